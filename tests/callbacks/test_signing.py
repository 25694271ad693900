"""The Paymenter-Signature scheme: what O2S verifies, including secret rotation."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest

from o2s.callback_delivery import callback_body_bytes, deliver_o2s_callback
from o2s.callback_signing import sign_callback, verify_callback_signature
from paymenter.models import OutboxMessage
from paymenter.outbox import OutboxHandlerError
from tests.callbacks.receiver import running_receiver

BODY = b'{"id":"evt_1","type":"invoice.voided"}'
NOW = 1_790_000_000


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(b"s3cret", f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()

    assert sign_callback(BODY, "s3cret", NOW) == f"t={NOW},v1={expected}"
    assert verify_callback_signature(sign_callback(BODY, "s3cret", NOW), BODY, ["s3cret"], now=NOW)


def test_wrong_secret_fails_verification() -> None:
    assert not verify_callback_signature(sign_callback(BODY, "attacker", NOW), BODY, ["s3cret"], now=NOW)


def test_a_changed_body_fails_verification() -> None:
    header = sign_callback(BODY, "s3cret", NOW)

    assert not verify_callback_signature(header, BODY.replace(b"voided", b"paid"), ["s3cret"], now=NOW)


@pytest.mark.parametrize(("age", "accepted"), [(300, True), (-300, True), (301, False), (-301, False)])
def test_timestamps_outside_five_minutes_are_rejected(age: int, accepted: bool) -> None:
    header = sign_callback(BODY, "s3cret", NOW - age)

    assert verify_callback_signature(header, BODY, ["s3cret"], now=NOW) is accepted


@pytest.mark.parametrize(
    "header",
    ["", "garbage", "t=abc,v1=00", f"t={NOW}", "v1=00", f"t={NOW},t={NOW},v1=00", f"t=-{NOW},v1=00"],
)
def test_malformed_headers_are_rejected(header: str) -> None:
    assert not verify_callback_signature(header, BODY, ["s3cret"], now=NOW)


def test_other_schemes_are_ignored_and_any_v1_may_match() -> None:
    good = sign_callback(BODY, "s3cret", NOW).split(",")[1]

    assert verify_callback_signature(f"t={NOW},v0=zz,v1=00,{good}", BODY, ["s3cret"], now=NOW)


def _message(payload: dict[str, Any]) -> OutboxMessage:
    return OutboxMessage(topic="o2s.callback", payload=payload)


def test_during_rotation_the_first_secret_signs_and_o2s_accepts_with_either_list(settings: Any) -> None:
    settings.O2S_CALLBACK_SECRETS = "new-secret, old-secret"
    payload = {"id": "evt_rotation", "type": "invoice.voided", "data": {"total_minor": 1}}
    with running_receiver(["new-secret"]) as receiver:
        settings.O2S_CALLBACK_URL = receiver.url
        deliver_o2s_callback(_message(payload))

    [received] = receiver.received
    header = received.headers["Paymenter-Signature"]
    assert received.body == callback_body_bytes(payload)
    assert json.loads(received.body) == payload
    assert verify_callback_signature(header, received.body, ["new-secret"])
    assert verify_callback_signature(header, received.body, ["old-secret", "new-secret"])
    assert not verify_callback_signature(header, received.body, ["old-secret"])
    timestamp = int(header.split(",")[0].removeprefix("t="))
    assert abs(timestamp - int(time.time())) <= 5


def test_a_receiver_with_the_wrong_secret_refuses_and_nothing_counts_as_delivered(settings: Any) -> None:
    settings.O2S_CALLBACK_SECRETS = "not-the-one-o2s-has"
    with running_receiver(["o2s-secret"]) as receiver:
        settings.O2S_CALLBACK_URL = receiver.url
        with pytest.raises(OutboxHandlerError, match="HTTP 401"):
            deliver_o2s_callback(_message({"id": "evt_wrong"}))

    assert receiver.received == []
    assert receiver.requests == 1


def test_body_bytes_are_compact_and_key_sorted() -> None:
    assert callback_body_bytes({"b": 1, "a": {"d": "é", "c": None}}) == b'{"a":{"c":null,"d":"\\u00e9"},"b":1}'
