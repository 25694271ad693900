"""Refunds, disputes, early fraud warnings and the daily report through the Stripe adapter,
against the local Stripe peer over HTTP (localstripe behind our double): what the adapter
asks, what Stripe answers and refuses, and the events Stripe sends about it, signed with the
real scheme and read back through the adapter's verify path."""

from __future__ import annotations

import functools
import json
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import stripe

from devtools.stripe_peer.harness import StripePeer
from gateways.base import (
    GatewayCode,
    GatewayDispute,
    GatewayDisputeStatus,
    GatewayEvent,
    GatewayEventKind,
    GatewayFraudWarning,
    GatewayPaymentStatus,
    GatewayRefund,
    GatewayRefundStatus,
    GatewayRequestError,
)
from gateways.stripe.adapter import StripeGateway, dispute_status
from paymenter.money import Money
from tests.factories import make_customer, make_invoice, start_card_payment
from tests.stripe_events import FIXTURES, signed, stripe_object

GATEWAY = StripeGateway()
DAY = datetime(2025, 3, 4, tzinfo=UTC)  # the reported day: [DAY, DAY + 1 day)
REQUEST = uuid.UUID("7c0d1f4e-2b8a-4d55-9f3e-0a6b2c1d9e77")


@pytest.fixture
def peer(stripe_settings: StripePeer) -> StripePeer:
    stripe_settings.configure(delivery="hold")  # events stay in the peer's log: tests read them there
    return stripe_settings


def _stripe(peer: StripePeer) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_peer", base_addresses={"api": peer.api_base})


def _events(peer: StripePeer, *types: str) -> list[dict[str, Any]]:
    return [event for event in peer.events() if event["type"] in types]


def _verified(event: dict[str, Any]) -> GatewayEvent:
    """The peer's event as the app's endpoint reads it: signed, verified, parsed."""
    body, header = signed(event)
    return GATEWAY.webhook_verify(body=body.encode(), headers={"Stripe-Signature": header})


def _refund(transaction_id: str, minor: int, *, key: str = "refund-key-1", request_id: uuid.UUID = REQUEST) -> Any:
    return GATEWAY.refund(
        transaction_id=transaction_id, amount=Money(minor, "AUD"), idempotency_key=key, request_id=request_id
    )


@pytest.mark.django_db
def test_a_refund_of_a_checkout_payment_names_our_refund_and_stripe_announces_it(peer: StripePeer) -> None:
    invoice = make_invoice(make_customer())
    attempt = start_card_payment(invoice)
    peer.pay(peer.checkout_url(attempt.gateway_session_id))  # 3-D Secure challenged, then authenticated
    paid = GATEWAY.payment_fetch(session_id=attempt.gateway_session_id)
    assert paid is not None
    assert (paid.status, paid.amount) == (GatewayPaymentStatus.SUCCEEDED, Money(invoice.total_minor, "AUD"))

    refund = _refund(paid.transaction_id, 300)

    assert refund.refund_id.startswith("re_")
    assert refund.created_at is not None
    assert refund == GatewayRefund(
        gateway=GatewayCode.STRIPE,
        refund_id=refund.refund_id,
        transaction_id=paid.transaction_id,
        status=GatewayRefundStatus.SUCCEEDED,
        amount=Money(300, "AUD"),
        request_id=REQUEST,
        gateway_status="succeeded",
        created_at=refund.created_at,
    )
    assert GATEWAY.refunds_fetch(refund_id=refund.refund_id) == [refund]
    charge_refunded, refund_created = _events(peer, "charge.refunded", "refund.created")
    charge = charge_refunded["data"]["object"]
    assert (charge["object"], charge["payment_intent"], charge["amount_refunded"], charge["refunded"]) == (
        "charge",
        paid.transaction_id,
        300,
        False,
    )
    assert refund_created["data"]["object"]["metadata"] == {"paymenter_refund_id": str(REQUEST)}
    about_the_charge = _verified(charge_refunded)
    assert about_the_charge == GatewayEvent(
        gateway=GatewayCode.STRIPE,
        event_id=charge_refunded["id"],
        event_type="charge.refunded",
        kind=GatewayEventKind.REFUND,
        created_at=datetime.fromtimestamp(charge_refunded["created"], tz=UTC),
        signed_at=about_the_charge.signed_at,
        object_id=charge["id"],
        transaction_id=paid.transaction_id,
    )  # no refund named: the ledger fetches every refund of the PaymentIntent
    parsed = _verified(refund_created)
    assert (parsed.kind, parsed.object_id, parsed.refund_id, parsed.transaction_id) == (
        GatewayEventKind.REFUND,
        refund.refund_id,
        refund.refund_id,
        paid.transaction_id,
    )


def test_the_same_idempotency_key_returns_the_same_refund_and_refunds_once(peer: StripePeer) -> None:
    payment_intent = peer.payment_intent_paid(1000)

    first = _refund(payment_intent, 400, key="refund-same")
    again = _refund(payment_intent, 400, key="refund-same")

    assert again == first
    assert GATEWAY.refunds_fetch(transaction_id=payment_intent) == [first]
    assert [e["type"] for e in _events(peer, "charge.refunded", "refund.created")] == [
        "charge.refunded",
        "refund.created",
    ]


def test_the_same_idempotency_key_with_another_amount_is_refused_and_refunds_nothing(peer: StripePeer) -> None:
    payment_intent = peer.payment_intent_paid(1000)
    first = _refund(payment_intent, 400, key="refund-reused")
    events_before = peer.events()

    with pytest.raises(GatewayRequestError, match="IdempotencyError"):
        _refund(payment_intent, 500, key="refund-reused")

    assert GATEWAY.refunds_fetch(transaction_id=payment_intent) == [first]
    assert peer.events() == events_before


def test_more_than_is_left_of_the_charge_is_refused_and_refunds_nothing(peer: StripePeer) -> None:
    payment_intent = peer.payment_intent_paid(1000)
    first = _refund(payment_intent, 700, key="refund-a")
    events_before = peer.events()

    with pytest.raises(GatewayRequestError, match="amount_too_large"):
        _refund(payment_intent, 301, key="refund-b")

    assert GATEWAY.refunds_fetch(transaction_id=payment_intent) == [first]
    assert peer.events() == events_before


def test_a_fully_refunded_payment_refuses_another_refund_and_refunds_nothing(peer: StripePeer) -> None:
    payment_intent = peer.payment_intent_paid(1000)
    first = _refund(payment_intent, 1000, key="refund-all")
    (charge_refunded,) = _events(peer, "charge.refunded")
    assert (charge_refunded["data"]["object"]["amount_refunded"], charge_refunded["data"]["object"]["refunded"]) == (
        1000,
        True,
    )
    events_before = peer.events()

    with pytest.raises(GatewayRequestError, match="charge_already_refunded"):
        _refund(payment_intent, 1, key="refund-one-more")
    with pytest.raises(requests.HTTPError, match="charge_already_refunded"):
        peer.dashboard_refund(payment_intent)

    assert GATEWAY.refunds_fetch(transaction_id=payment_intent) == [first]
    assert peer.events() == events_before


def _at_once(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` on their own threads, released together; each result or exception."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait()
        try:
            return call()
        except GatewayRequestError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def test_concurrent_retries_of_one_refund_make_one_refund(peer: StripePeer) -> None:
    payment_intent = peer.payment_intent_paid(1000)

    results = _at_once([functools.partial(_refund, payment_intent, 400, key="refund-retried")] * 8)

    assert all(isinstance(result, GatewayRefund) for result in results)
    assert len(set(results)) == 1
    assert GATEWAY.refunds_fetch(transaction_id=payment_intent) == [results[0]]
    assert len(_events(peer, "refund.created")) == 1


def test_two_concurrent_full_refunds_one_is_made_and_the_other_refused(peer: StripePeer) -> None:
    payment_intent = peer.payment_intent_paid(1000)
    calls = [
        functools.partial(_refund, payment_intent, 1000, key=f"refund-click-{n}", request_id=uuid.uuid4())
        for n in range(2)
    ]

    results = _at_once(calls)

    made = [result for result in results if isinstance(result, GatewayRefund)]
    refused = [result for result in results if isinstance(result, GatewayRequestError)]
    assert (len(made), len(refused)) == (1, 1)
    assert "charge_already_refunded" in str(refused[0])
    assert GATEWAY.refunds_fetch(transaction_id=payment_intent) == made
    assert len(_events(peer, "refund.created")) == 1


def test_a_payment_that_took_no_money_cannot_be_refunded(peer: StripePeer) -> None:
    unpaid = _stripe(peer).v1.payment_intents.create(params={"amount": 1000, "currency": "aud"})

    with pytest.raises(GatewayRequestError):
        _refund(unpaid.id, 100)

    assert peer.events() == []


def test_refunds_of_a_payment_include_one_made_in_the_dashboard_without_our_request(peer: StripePeer) -> None:
    payment_intent = peer.payment_intent_paid(1000)
    ours = _refund(payment_intent, 250)

    made_in_dashboard = peer.dashboard_refund(payment_intent, amount=100)

    dashboard = GatewayRefund(
        gateway=GatewayCode.STRIPE,
        refund_id=made_in_dashboard["id"],
        transaction_id=payment_intent,
        status=GatewayRefundStatus.SUCCEEDED,
        amount=Money(100, "AUD"),
        request_id=None,
        gateway_status="succeeded",
        created_at=datetime.fromtimestamp(made_in_dashboard["created"], tz=UTC),
    )
    assert GATEWAY.refunds_fetch(refund_id=made_in_dashboard["id"]) == [dashboard]
    by_payment = GATEWAY.refunds_fetch(transaction_id=payment_intent, page_size=1)  # two pages
    assert sorted(by_payment, key=lambda r: r.amount.minor) == [dashboard, ours]
    charge_refunded, refund_created = _events(peer, "charge.refunded", "refund.created")[2:]
    assert charge_refunded["data"]["object"]["amount_refunded"] == 350
    parsed = _verified(refund_created)
    assert (parsed.refund_id, parsed.transaction_id) == (made_in_dashboard["id"], payment_intent)
    assert refund_created["data"]["object"]["metadata"] == {}


def test_a_dashboard_refund_takes_what_is_left_by_default(peer: StripePeer) -> None:
    payment_intent = peer.payment_intent_paid(1000)
    _refund(payment_intent, 600)

    rest = peer.dashboard_refund(payment_intent)

    assert (rest["amount"], rest["payment_intent"], rest["metadata"]) == (400, payment_intent, {})


def test_refunds_fetch_without_an_id_asks_nothing() -> None:
    assert GATEWAY.refunds_fetch() == []
    assert GATEWAY.disputes_fetch() == []


@pytest.mark.parametrize(
    ("outcome", "status"), [("won", GatewayDisputeStatus.WON), ("lost", GatewayDisputeStatus.LOST)]
)
def test_a_dispute_is_open_until_the_network_decides(
    peer: StripePeer, outcome: str, status: GatewayDisputeStatus
) -> None:
    payment_intent = peer.payment_intent_paid(5000)

    opened = peer.dispute_open(payment_intent, amount=4000, reason="product_not_received")

    dispute = GatewayDispute(
        gateway=GatewayCode.STRIPE,
        dispute_id=opened["id"],
        transaction_id=payment_intent,
        status=GatewayDisputeStatus.OPEN,
        amount=Money(4000, "AUD"),
        reason="product_not_received",
        gateway_status="needs_response",
        evidence_due_by=datetime.fromtimestamp(opened["evidence_details"]["due_by"], tz=UTC),
    )
    assert GATEWAY.disputes_fetch(dispute_id=opened["id"]) == [dispute]
    assert GATEWAY.disputes_fetch(transaction_id=payment_intent) == [dispute]

    peer.dispute_close(opened["id"], outcome)

    decided = GatewayDispute(**{**dispute.__dict__, "status": status, "gateway_status": outcome})
    assert GATEWAY.disputes_fetch(dispute_id=opened["id"]) == [decided]
    assert GATEWAY.disputes_fetch(transaction_id=payment_intent) == [decided]
    created, closed = _events(peer, "charge.dispute.created", "charge.dispute.closed")
    assert [(e["type"], e["data"]["object"]["status"]) for e in (created, closed)] == [
        ("charge.dispute.created", "needs_response"),
        ("charge.dispute.closed", outcome),
    ]
    for event in (created, closed):
        parsed = _verified(event)
        assert (parsed.kind, parsed.object_id, parsed.dispute_id, parsed.transaction_id) == (
            GatewayEventKind.DISPUTE,
            opened["id"],
            opened["id"],
            payment_intent,
        )


def test_disputes_of_a_payment_are_its_own_and_a_closed_one_cannot_close_again(peer: StripePeer) -> None:
    disputed, other = peer.payment_intent_paid(5000), peer.payment_intent_paid(3000)
    first = peer.dispute_open(disputed, reason="fraudulent")
    second = peer.dispute_open(disputed, amount=100, reason="duplicate")
    peer.dispute_open(other)
    peer.dispute_close(first["id"], "won")
    events_before = peer.events()

    with pytest.raises(requests.HTTPError, match="already closed"):
        peer.dispute_close(first["id"], "lost")

    found = GATEWAY.disputes_fetch(transaction_id=disputed, page_size=1)  # two pages
    assert sorted((d.dispute_id, d.status, d.amount.minor, d.reason) for d in found) == sorted(
        [
            (first["id"], GatewayDisputeStatus.WON, 5000, "fraudulent"),
            (second["id"], GatewayDisputeStatus.OPEN, 100, "duplicate"),
        ]
    )
    assert peer.events() == events_before


def test_an_unknown_dispute_is_a_refusal(peer: StripePeer) -> None:
    with pytest.raises(GatewayRequestError, match="resource_missing"):
        GATEWAY.disputes_fetch(dispute_id="dp_unknown")


def test_an_early_fraud_warning_names_the_payment(peer: StripePeer) -> None:
    payment_intent = peer.payment_intent_paid(2000)

    raised = peer.fraud_warning_create(payment_intent, fraud_type="unauthorized_use_of_card", actionable=True)

    assert raised["id"].startswith("issfr_")
    assert GATEWAY.fraud_warning_fetch(warning_id=raised["id"]) == GatewayFraudWarning(
        gateway=GatewayCode.STRIPE,
        warning_id=raised["id"],
        transaction_id=payment_intent,
        fraud_type="unauthorized_use_of_card",
        actionable=True,
        created_at=datetime.fromtimestamp(raised["created"], tz=UTC),
    )
    (event,) = _events(peer, "radar.early_fraud_warning.created")
    parsed = _verified(event)
    assert (parsed.kind, parsed.object_id, parsed.transaction_id) == (
        GatewayEventKind.FRAUD_WARNING,
        raised["id"],
        payment_intent,
    )


def test_the_daily_report_lists_the_days_succeeded_payments_newest_first_over_pages(peer: StripePeer) -> None:
    start = int(DAY.timestamp())
    created = {
        "before": start - 1,
        "first": start,
        "second": start + 3600,
        "last": start + 86399,
        "after": start + 86400,
    }
    intents = {name: peer.payment_intent_paid(100 * (i + 1)) for i, name in enumerate(created)}
    unpaid = _stripe(peer).v1.payment_intents.create(params={"amount": 999, "currency": "aud"}).id
    for name, when in created.items():
        peer.payment_intent_backdate(intents[name], when)
    peer.payment_intent_backdate(unpaid, start + 60)

    reported = GATEWAY.payments_report(since=DAY, until=DAY + timedelta(days=1), page_size=2)

    assert reported is not None
    assert [(p.transaction_id, p.status, p.amount) for p in reported] == [
        (intents["last"], GatewayPaymentStatus.SUCCEEDED, Money(400, "AUD")),
        (intents["second"], GatewayPaymentStatus.SUCCEEDED, Money(300, "AUD")),
        (intents["first"], GatewayPaymentStatus.SUCCEEDED, Money(200, "AUD")),
    ]
    assert GATEWAY.payments_report(since=DAY - timedelta(days=2), until=DAY - timedelta(days=1)) == []


def test_the_peer_lists_payment_intents_as_stripe_pages_them(peer: StripePeer) -> None:
    start = int(DAY.timestamp())
    intents = [peer.payment_intent_paid(100) for _ in range(3)]
    for offset, payment_intent in enumerate(intents):
        peer.payment_intent_backdate(payment_intent, start + offset)
    client = _stripe(peer)

    first = client.v1.payment_intents.list(params={"created": {"gte": start}, "limit": 2})
    rest = client.v1.payment_intents.list(
        params={"created": {"gte": start}, "limit": 2, "starting_after": first.data[-1].id}
    )

    assert ([p.id for p in first.data], first.has_more) == ([intents[2], intents[1]], True)
    assert ([p.id for p in rest.data], rest.has_more) == ([intents[0]], False)
    assert [p.created for p in client.v1.payment_intents.list(params={"created": {"lt": start + 1}}).data] == [start]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.list(params={"limit": 101})


def test_a_reset_forgets_disputes_and_warnings(peer: StripePeer) -> None:
    payment_intent = peer.payment_intent_paid(1000)
    dispute = peer.dispute_open(payment_intent)
    warning = peer.fraud_warning_create(payment_intent)

    peer.reset()

    client = _stripe(peer)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.disputes.retrieve(dispute["id"])
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.radar.early_fraud_warnings.retrieve(warning["id"])
    assert client.v1.disputes.list().data == []
    assert peer.events() == []


def test_the_peers_refund_and_dispute_objects_have_stripes_shape(peer: StripePeer) -> None:
    payment_intent = peer.payment_intent_paid(1000)
    refund = _stripe(peer).v1.refunds.create(params={"payment_intent": payment_intent, "amount": 10})
    dispute = peer.dispute_open(payment_intent)
    official = json.loads(FIXTURES.read_text())

    assert set(refund.to_dict()) == set(official["refund"])
    assert set(dispute) == set(official["dispute"])
    assert (refund.payment_intent, refund.currency, refund.status) == (payment_intent, "aud", "succeeded")


@pytest.mark.parametrize(
    ("stripe_status", "case_type", "status"),
    [
        ("warning_needs_response", "inquiry", GatewayDisputeStatus.OPEN),
        ("warning_under_review", "inquiry", GatewayDisputeStatus.OPEN),
        ("warning_closed", "inquiry", GatewayDisputeStatus.WON),
        ("needs_response", "chargeback", GatewayDisputeStatus.OPEN),
        ("under_review", "chargeback", GatewayDisputeStatus.OPEN),
        ("won", "chargeback", GatewayDisputeStatus.WON),
        ("lost", "chargeback", GatewayDisputeStatus.LOST),
        ("appeal_needs_response", "chargeback", GatewayDisputeStatus.OPEN),
        ("prevented", "block", GatewayDisputeStatus.WON),
        ("prevented", "resolution", GatewayDisputeStatus.LOST),
        ("a_status_stripe_adds_later", "chargeback", GatewayDisputeStatus.OPEN),
    ],
)
def test_every_stripe_dispute_status_is_open_until_decided(
    stripe_status: str, case_type: str, status: GatewayDisputeStatus
) -> None:
    dispute = stripe_object("dispute", status=stripe_status)
    dispute["payment_method_details"]["card"]["case_type"] = case_type

    assert dispute_status(dispute) is status


def test_a_refund_in_a_currency_we_do_not_invoice_in_is_refused_not_guessed(peer: StripePeer) -> None:
    payment_intent = peer.payment_intent_paid(1000, currency="xts")  # ISO 4217's code for testing
    refund = peer.dashboard_refund(payment_intent)

    with pytest.raises(GatewayRequestError, match="unsupported currency"):
        GATEWAY.refunds_fetch(refund_id=refund["id"])
