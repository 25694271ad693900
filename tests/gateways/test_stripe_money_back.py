"""Money going back through Stripe, end to end against the local peer, on committed data with
real concurrent requests: a staff refund and its own webhooks record one refund; a refund made
in the Stripe dashboard arrives by webhook and, delivered 50 times at once, records one refund,
one credit note and one callback; disputes and early fraud warnings arrive by webhook and are
recorded once; the daily summary compares the ledger with Stripe's report."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
import requests
from django.contrib.auth.models import Group, User
from django.db import connections
from django.utils import timezone

from devtools.stripe_peer.harness import StripePeer
from gateways.models import Dispute, FraudWarning, Payment, Refund, WebhookEvent
from gateways.registry import gateway_for
from gateways.services import payment_settle, refund_request, webhook_event_process
from gateways.services.summaries import payment_daily_summary
from invoices.models import CreditNote, Invoice
from paymenter import rls
from paymenter.models import OutboxMessage
from paymenter.money import Money
from paymenter.principals import StaffPrincipal, SystemPrincipal
from tests.factories import make_customer, make_invoice
from tests.stripe_events import WEBHOOK_URL, signed

pytestmark = pytest.mark.committed
READER = SystemPrincipal(label="test:stripe-money-back")
CONCURRENT_DELIVERIES = 50


def _paid_by_card(peer: StripePeer) -> tuple[Invoice, Payment]:
    """An invoice paid by a PaymentIntent Stripe took, recorded from the fetch-back."""
    invoice = make_invoice(make_customer())
    intent = peer.payment_intent_paid(invoice.total_minor, metadata={"invoice_id": str(invoice.id)})
    reported = gateway_for("stripe").payment_fetch(transaction_id=intent)
    assert reported is not None
    settled = payment_settle(principal=READER, reported=reported, recorded_by="test")
    assert settled.payment is not None
    assert settled.payment.status == "applied"
    return invoice, settled.payment


def _events_of(peer: StripePeer, event_type: str, object_key: str, value: str) -> list[dict[str, Any]]:
    return [
        event
        for event in peer.events()
        if event["type"] == event_type and event["data"]["object"].get(object_key) == value
    ]


def _deliver(live_url: str, event: dict[str, Any]) -> int:
    body, header = signed(event)
    return requests.post(
        live_url + WEBHOOK_URL, data=body, headers={"Stripe-Signature": header}, timeout=60
    ).status_code


def _process_all(event_ids: list[str]) -> list[str]:
    with rls.acting_as(READER):
        stored = list(WebhookEvent.objects.filter(event_id__in=event_ids).values_list("pk", flat=True))
    return [str(webhook_event_process(webhook_event_id=pk)) for pk in stored]


def _effects(invoice: Invoice) -> dict[str, Any]:
    with rls.acting_as(READER):
        stored = Invoice.objects.get(pk=invoice.pk)
        return {
            "status": stored.status,
            "refunded": stored.amount_refunded_minor,
            "refunds": sorted(Refund.objects.filter(invoice=invoice).values_list("origin", "status", "amount_minor")),
            "credit_notes": CreditNote.objects.filter(invoice=invoice).count(),
            "messages": dict(
                Counter(
                    OutboxMessage.objects.filter(payload__data__invoice_id=str(invoice.id))
                    .exclude(payload__type__in=["invoice.issued", "invoice.paid"])
                    .values_list("topic", "payload__type")
                )
            ),
        }


def _billing_user() -> User:
    user = User.objects.create_user(username=f"billing-{uuid.uuid4().hex[:8]}", is_staff=True)
    user.groups.add(Group.objects.get(name="billing"))
    return user


def test_a_staff_refund_through_stripe_and_its_own_webhooks_record_one_refund(
    live_url: str, stripe_settings: StripePeer
) -> None:
    stripe_settings.configure(delivery="hold")
    invoice, payment = _paid_by_card(stripe_settings)
    user = _billing_user()

    refund = refund_request(
        principal=StaffPrincipal(user_id=user.pk, username=user.username),
        payment_id=payment.pk,
        amount=Money(1000, "AUD"),
        reason="downgrade",
        user_id=user.pk,
    )
    own = [
        *_events_of(stripe_settings, "charge.refunded", "payment_intent", payment.transaction_id),
        *_events_of(stripe_settings, "refund.created", "payment_intent", payment.transaction_id),
    ]
    assert len(own) == 2
    assert [_deliver(live_url, event) for event in own] == [200, 200]

    assert refund.status == "succeeded"
    assert refund.gateway_refund_id.startswith("re_")
    assert sorted(_process_all([event["id"] for event in own])) == ["processed", "processed"]
    assert _effects(invoice) == {
        "status": "partially_refunded",
        "refunded": 1000,
        "refunds": [("staff", "succeeded", 1000)],
        "credit_notes": 1,
        "messages": {
            ("o2s.callback", "invoice.partially_refunded"): 1,
            ("portal.receipt", "invoice.partially_refunded"): 1,
        },
    }


def test_fifty_simultaneous_deliveries_of_a_dashboard_refund_record_it_once(
    live_url_concurrent: str, stripe_settings: StripePeer
) -> None:
    live_url = live_url_concurrent
    stripe_settings.configure(delivery="hold")
    invoice, payment = _paid_by_card(stripe_settings)
    stripe_settings.dashboard_refund(payment.transaction_id)
    [charge_refunded] = _events_of(stripe_settings, "charge.refunded", "payment_intent", payment.transaction_id)
    [refund_created] = _events_of(stripe_settings, "refund.created", "payment_intent", payment.transaction_id)
    barrier = threading.Barrier(CONCURRENT_DELIVERIES)

    def deliver(index: int) -> int:
        barrier.wait()
        return _deliver(live_url, charge_refunded if index % 2 else refund_created)

    with ThreadPoolExecutor(CONCURRENT_DELIVERIES) as pool:
        assert list(pool.map(deliver, range(CONCURRENT_DELIVERIES))) == [200] * CONCURRENT_DELIVERIES
    with rls.acting_as(READER):
        stored = list(
            WebhookEvent.objects.filter(event_id__in=[charge_refunded["id"], refund_created["id"]]).values_list(
                "pk", flat=True
            )
        )
    assert len(stored) == 2
    racers = 12
    start = threading.Barrier(racers)

    def race(index: int) -> None:
        start.wait()
        try:
            webhook_event_process(webhook_event_id=stored[index % 2])
        finally:
            connections.close_all()

    with ThreadPoolExecutor(racers) as pool:
        list(pool.map(race, range(racers)))

    assert _effects(invoice) == {
        "status": "refunded",
        "refunded": invoice.total_minor,
        "refunds": [("gateway", "succeeded", invoice.total_minor)],
        "credit_notes": 1,
        "messages": {("o2s.callback", "invoice.refunded"): 1, ("portal.receipt", "invoice.refunded"): 1},
    }


def test_a_dispute_opened_and_lost_at_stripe_is_recorded_and_told_once(
    live_url: str, stripe_settings: StripePeer
) -> None:
    stripe_settings.configure(delivery="hold")
    invoice, payment = _paid_by_card(stripe_settings)
    dispute = stripe_settings.dispute_open(payment.transaction_id, reason="fraudulent")
    [created] = _events_of(stripe_settings, "charge.dispute.created", "id", dispute["id"])
    assert [_deliver(live_url, created), _deliver(live_url, created)] == [200, 200]
    assert _process_all([created["id"]]) == ["processed"]
    with rls.acting_as(READER):
        assert Invoice.objects.get(pk=invoice.pk).status == "disputed"

    stripe_settings.dispute_close(dispute["id"], "lost")
    [closed] = _events_of(stripe_settings, "charge.dispute.closed", "id", dispute["id"])
    assert _deliver(live_url, closed) == 200
    assert _process_all([closed["id"]]) == ["processed"]

    with rls.acting_as(READER):
        assert list(Dispute.objects.filter(invoice=invoice).values_list("gateway_dispute_id", "status")) == [
            (dispute["id"], "lost")
        ]
    assert _effects(invoice)["messages"] == {
        ("o2s.callback", "invoice.disputed"): 1,
        ("o2s.callback", "invoice.dispute_closed"): 1,
        ("fraud.risk_signal", "invoice.disputed"): 1,  # the customer's next payments go to review
    }


def test_an_early_fraud_warning_arrives_by_webhook_and_is_kept(live_url: str, stripe_settings: StripePeer) -> None:
    stripe_settings.configure(delivery="hold")
    _, payment = _paid_by_card(stripe_settings)
    warning = stripe_settings.fraud_warning_create(payment.transaction_id)
    [created] = _events_of(stripe_settings, "radar.early_fraud_warning.created", "id", warning["id"])

    assert _deliver(live_url, created) == 200
    assert _process_all([created["id"]]) == ["processed"]

    with rls.acting_as(READER):
        kept = FraudWarning.objects.get(gateway_warning_id=warning["id"])
    assert (kept.payment_id, kept.fraud_type, kept.actionable) == (payment.pk, "made_with_stolen_card", True)


def test_the_daily_summary_flags_what_stripe_took_that_we_never_recorded(
    committed_db: None, stripe_settings: StripePeer
) -> None:
    _, recorded = _paid_by_card(stripe_settings)
    stranger = stripe_settings.payment_intent_paid(777)  # paid at Stripe, never recorded here
    period_end = timezone.now() + timedelta(hours=1)

    summary = payment_daily_summary(code="stripe", period_end=period_end)

    flagged = {(item["kind"], item["transaction_id"]) for item in summary.differences}
    assert ("not_recorded_here", stranger) in flagged
    assert not any(transaction_id == recorded.transaction_id for _, transaction_id in flagged)
    assert summary.reported_count is not None
    assert summary.reported_count >= 2
