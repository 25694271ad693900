"""``/webhooks/stripe/``: only deliveries provably from Stripe, recent and well-formed, are
stored, each once; everything else is a 400 with a code, nothing written, and a refusal
counted per source address (never an audit row per forgery)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
from django.test import Client
from django_redis import get_redis_connection
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from gateways.models import WebhookEvent
from paymenter import refusals, rls
from paymenter.models import OutboxMessage
from paymenter.principals import SystemPrincipal
from tests.stripe_events import (
    WEBHOOK_URL,
    checkout_session_event,
    signature,
    signed,
    stripe_event,
    stripe_webhooks_only,
)

pytestmark = pytest.mark.django_db
READER = SystemPrincipal(label="test:webhooks")


@pytest.fixture(autouse=True)
def _stripe(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # every refusal of a test in one refusal window, whatever the wall clock says
    monkeypatch.setattr(refusals, "clock", lambda: 1_800_000_010.0)
    stripe_webhooks_only(settings)
    get_redis_connection("default").flushdb()


def _post(body: str | bytes, header: str | None, **extra: Any) -> Any:
    headers: dict[str, Any] = {"HTTP_STRIPE_SIGNATURE": header} if header is not None else {}
    return Client().post(WEBHOOK_URL, data=body, content_type="application/json", **headers, **extra)


def _written() -> dict[str, int]:
    with rls.acting_as(READER):
        return {
            "inbox": WebhookEvent.objects.count(),
            "outbox": OutboxMessage.objects.count(),
            "audit": AuditEvent.objects.count(),
        }


NOTHING = {"inbox": 0, "outbox": 0, "audit": 0}


def _code(response: Any) -> str:
    return str(response.json()["error"]["code"])


def test_a_signed_delivery_is_stored_once_with_one_outbox_message() -> None:
    body, header = signed(checkout_session_event(event_id="evt_test_stored"))
    response = _post(body, header)
    assert response.status_code == 200
    assert response.json() == {"received": True, "duplicate": False}
    with rls.acting_as(READER):
        stored = WebhookEvent.objects.get()
        message = OutboxMessage.objects.get()
    assert (stored.gateway, stored.event_id, stored.event_type, stored.object_id, stored.status) == (
        "stripe",
        "evt_test_stored",
        "checkout.session.completed",
        "cs_test_1",
        "received",
    )
    assert str(stored.body) == body  # exactly what was signed
    assert (message.topic, message.payload["webhook_event_id"]) == ("gateways.webhook_event", str(stored.pk))
    assert _written()["audit"] == 0


def test_a_duplicate_and_a_replay_resigned_with_a_fresh_timestamp_change_nothing() -> None:
    event = checkout_session_event(event_id="evt_test_replayed")
    body, header = signed(event, timestamp=int(time.time()) - 100)
    assert _post(body, header).status_code == 200
    before = _written()
    again = _post(body, header)
    resigned = _post(body, signature(body))  # the same event, signed anew
    assert [again.json()["duplicate"], resigned.json()["duplicate"]] == [True, True]
    assert _written() == before


def test_the_second_secret_is_accepted_while_the_endpoint_secret_rotates(settings: Any) -> None:
    settings.STRIPE_WEBHOOK_SECRETS = ["whsec_new", "whsec_test_peer"]
    body, header = signed(checkout_session_event())
    assert _post(body, header).status_code == 200


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("stale", "webhook_timestamp_stale"),
        ("future", "webhook_timestamp_future"),
        ("tampered", "webhook_signature_invalid"),
        ("wrong_secret", "webhook_signature_invalid"),
        ("missing", "webhook_signature_missing"),
        ("garbage_header", "webhook_signature_invalid"),
        ("signed_not_json", "webhook_body_malformed"),
        ("signed_not_an_event", "webhook_body_malformed"),
        ("signed_id_with_a_nul", "webhook_body_malformed"),
        ("empty", "webhook_body_malformed"),
    ],
)
def test_a_delivery_that_is_not_provably_from_stripe_is_refused_and_nothing_is_written(case: str, code: str) -> None:
    body, header = signed(checkout_session_event())
    now = int(time.time())
    if case == "stale":
        header = signature(body, timestamp=now - 301)
    elif case == "future":
        header = signature(body, timestamp=now + 3600)
    elif case == "tampered":
        body = body.replace('"cs_test_1"', '"cs_test_2"')
    elif case == "wrong_secret":
        header = signature(body, secret="whsec_attacker")
    elif case == "missing":
        header = None  # type: ignore[assignment]
    elif case == "garbage_header":
        header = "t=abc,v1=zz"
    elif case == "signed_not_json":
        body = "{not json"
        header = signature(body)
    elif case == "signed_not_an_event":
        body = json.dumps({"id": "not_an_event", "type": "x", "data": {}})
        header = signature(body)
    elif case == "signed_id_with_a_nul":
        body = json.dumps(checkout_session_event(event_id="evt_test_\u0000x"))
        header = signature(body)
    elif case == "empty":
        body, header = "", signature("")
    response = _post(body, header)
    assert (response.status_code, _code(response)) == (400, code)
    assert _written() == NOTHING


def test_an_oversized_body_is_refused_before_it_is_read(settings: Any) -> None:
    settings.WEBHOOK_MAX_BODY_BYTES = 1024
    event = checkout_session_event()
    event["data"]["object"]["metadata"] = {"padding": "x" * 2000}
    body, header = signed(event)
    response = _post(body, header)
    assert (response.status_code, _code(response)) == (400, "webhook_body_too_large")
    assert _written() == NOTHING


def test_get_is_not_allowed() -> None:
    assert Client().get(WEBHOOK_URL).status_code == 405
    assert _written() == NOTHING


def test_an_event_type_we_do_not_act_on_is_acknowledged_and_stored() -> None:
    body, header = signed(stripe_event("customer.created", {"id": "cus_test_1", "object": "customer"}))
    assert _post(body, header).status_code == 200
    assert _written()["inbox"] == 1


def test_the_optional_source_allowlist_refuses_other_addresses(settings: Any) -> None:
    settings.STRIPE_WEBHOOK_ALLOWED_IPS = ["3.18.12.63/32"]
    body, header = signed(checkout_session_event())
    refused = _post(body, header)  # the test client comes from 127.0.0.1
    assert (refused.status_code, _code(refused)) == (403, "webhook_source_not_allowed")
    assert _written() == NOTHING
    accepted = _post(body, header, REMOTE_ADDR="3.18.12.63")
    assert accepted.status_code == 200


def test_a_disabled_gateway_stores_nothing(settings: Any) -> None:
    settings.STRIPE_SECRET_KEY = ""
    body, header = signed(checkout_session_event())
    response = _post(body, header)
    assert (response.status_code, _code(response)) == (400, "webhook_gateway_disabled")
    assert _written() == NOTHING


def test_forgeries_are_counted_per_source_and_a_flood_is_turned_away_at_the_gate(live_url: str, settings: Any) -> None:
    settings.REFUSAL_LIMIT_PER_WINDOW = 5
    body, _ = signed(checkout_session_event())
    before = _written()

    def forge() -> int:
        headers = {"Stripe-Signature": signature(body, secret="whsec_attacker"), "Content-Type": "application/json"}
        return requests.post(live_url + WEBHOOK_URL, data=body, headers=headers, timeout=10).status_code

    statuses = [forge() for _ in range(8)]
    assert statuses == [400] * 6 + [429] * 2  # past the limit (more than 5): refused at the gate
    assert _written() == before  # counted in Redis, audited later as one aggregated event per window
    kinds = {
        key.decode().split(":refusals:")[-1].split(":")[0]
        for key in get_redis_connection("default").keys("*refusals:webhook*")
    }
    assert kinds == {"webhook"}


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(st.binary(max_size=2048), st.text(max_size=2048).map(str.encode)),
    header=st.one_of(st.none(), st.text(max_size=200)),
    content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""]),
)
def test_arbitrary_bodies_and_headers_never_produce_a_server_error(
    body: bytes, header: str | None, content_type: str
) -> None:
    extra: dict[str, Any] = {}
    if header is not None and header.isprintable():
        extra["HTTP_STRIPE_SIGNATURE"] = header
    response = Client().post(WEBHOOK_URL, data=body, content_type=content_type, **extra)
    assert response.status_code in (400, 429)
    assert _written()["inbox"] == 0


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payload=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
        max_leaves=20,
    )
)
def test_arbitrary_json_correctly_signed_never_produces_a_server_error(payload: Any) -> None:
    body = json.dumps(payload)
    response = _post(body, signature(body))
    assert response.status_code in (200, 400, 429)


def test_refused_deliveries_log_one_security_line_per_address_and_window(caplog: pytest.LogCaptureFixture) -> None:
    body, _ = signed(checkout_session_event())
    with caplog.at_level("INFO"):
        statuses = [_post(body, signature(body, secret="whsec_attacker")).status_code for _ in range(4)]
    assert statuses == [400] * 4
    assert [record for record in caplog.records if record.name == "django.request"] == []
    [line] = [record.getMessage() for record in caplog.records if record.name == "webhooks.views"]
    assert line.startswith("stripe webhook refused from 127.0.0.1: webhook_signature_invalid")
