"""The PayPal fake itself: the approval page's two buttons, the delivery switch and replays,
and the limits it keeps like PayPal (the report's 31 days)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from devtools.paypal_peer.harness import PaypalPeer
from gateways.base import PaymentRequest
from gateways.paypal.adapter import PaypalGateway
from gateways.paypal.client import PaypalRequestError
from gateways.paypal.webhooks import signed_message
from paymenter.money import Money
from tests.paypal_peer_fixtures import RecordingServer, recording_server


@pytest.fixture
def receiver() -> Iterator[RecordingServer]:
    with recording_server() as server:
        yield server


def _order(key: str) -> tuple[str, str]:
    started = PaypalGateway().payment_start(
        PaymentRequest(
            attempt_id=uuid.uuid4(),
            invoice_id=uuid.uuid4(),
            invoice_number="INV-1",
            customer_id=uuid.uuid4(),
            amount=Money(1_000, "AUD"),
            description="Invoice INV-1",
            success_url="https://billing.example.test/return/?a=1",
            cancel_url="https://billing.example.test/cancel/",
            idempotency_key=key,
        )
    )
    return started.session_id, started.redirect_url


def test_the_approval_page_approves_or_cancels_like_paypals(paypal_settings: PaypalPeer) -> None:
    approved, approved_url = _order("peer-approve")
    location = paypal_settings.approve_in_browser(approved_url)
    assert location.startswith("https://billing.example.test/return/?")
    assert parse_qs(urlsplit(location).query) == {"a": ["1"], "token": [approved], "PayerID": ["PEERPAYER0001"]}
    payment = PaypalGateway().payment_fetch(session_id=approved)
    assert payment is not None
    assert payment.capturable
    canceled, canceled_url = _order("peer-cancel")
    assert paypal_settings.cancel_in_browser(canceled_url) == f"https://billing.example.test/cancel/?token={canceled}"
    still = PaypalGateway().payment_fetch(session_id=canceled)
    assert still is not None
    assert not still.capturable
    assert [event["event_type"] for event in paypal_settings.events()] == ["CHECKOUT.ORDER.APPROVED"]


def test_held_events_are_released_in_order_dropped_ones_only_logged_and_any_can_be_replayed(
    paypal_settings: PaypalPeer, receiver: RecordingServer
) -> None:
    paypal_settings.configure(webhook_url=receiver.url, delivery="drop")
    dropped, _ = _order("peer-dropped")
    paypal_settings.approve(dropped)
    paypal_settings.configure(delivery="hold")
    held, _ = _order("peer-held")
    paypal_settings.approve(held)
    assert receiver.received == []
    released = paypal_settings.release()
    assert [item["status"] for item in released] == [200]
    first_event, held_event = (event["id"] for event in paypal_settings.events())
    assert paypal_settings.replay(first_event) == 200  # the dropped one, sent after all
    (held_body, held_headers), (replayed_body, replayed_headers) = receiver.received
    assert (b'"id": "' + held_event.encode()) in held_body
    assert (b'"id": "' + first_event.encode()) in replayed_body
    assert held_headers["PAYPAL-TRANSMISSION-ID"] != replayed_headers["PAYPAL-TRANSMISSION-ID"]
    assert held_headers["PAYPAL-AUTH-ALGO"] == "SHA256withRSA"
    assert (
        signed_message(transmission_id="t", transmission_time="2026-03-01T10:00:00Z", webhook_id="WH", body=b"{}")
        == b"t|2026-03-01T10:00:00Z|WH|2745614147"
    )  # crc32(b"{}") as an unsigned decimal


def test_the_report_is_refused_beyond_31_days_like_paypals(paypal_settings: PaypalPeer) -> None:
    with pytest.raises(PaypalRequestError) as refused:
        PaypalGateway().payments_report(since=datetime(2026, 1, 1, tzinfo=UTC), until=datetime(2026, 3, 1, tzinfo=UTC))
    assert (refused.value.status, refused.value.issue) == (400, "INVALID_PARAMETER_VALUE")
