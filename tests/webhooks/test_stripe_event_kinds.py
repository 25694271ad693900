"""Which Stripe events the ledger acts on, and what each names: Stripe's own example objects
(tests/fixtures/stripe, MIT) in events signed with the real scheme, read through the adapter's
verify path and stored once by ``/webhooks/stripe/``."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from django.test import Client
from django_redis import get_redis_connection

from gateways.base import GatewayEventKind
from gateways.models import WebhookEvent
from gateways.stripe.adapter import StripeGateway
from paymenter import rls
from paymenter.principals import SystemPrincipal
from tests.stripe_events import WEBHOOK_URL, signed, stripe_event, stripe_object, stripe_webhooks_only

READER = SystemPrincipal(label="test:stripe-event-kinds")
PAYMENT_INTENT = "pi_3MtwBwLkdIwHu7ix28a3tqPa"
CHARGE = "ch_3MtwBwLkdIwHu7ix2Ha1oSdr"

REFUND = stripe_object("refund", id="re_3MtwBwLkdIwHu7ix0cQ0hV6d", charge=CHARGE, payment_intent=PAYMENT_INTENT)
REFUNDED_CHARGE = stripe_object(
    "charge", id=CHARGE, payment_intent=PAYMENT_INTENT, amount=1000, amount_refunded=1000, refunded=True
)
DISPUTE = stripe_object("dispute", id="dp_1MtwBwLkdIwHu7ixAbCdEf01", charge=CHARGE, payment_intent=PAYMENT_INTENT)
WARNING = stripe_object("radar.early_fraud_warning", id="issfr_1MtwBwLkdIwHu7ix", charge=CHARGE) | {
    "payment_intent": PAYMENT_INTENT
}

# event type, object, kind, refund_id, dispute_id
KINDS: list[tuple[str, dict[str, Any], GatewayEventKind, str, str]] = [
    ("charge.refunded", REFUNDED_CHARGE, GatewayEventKind.REFUND, "", ""),
    ("charge.refund.updated", REFUND, GatewayEventKind.REFUND, REFUND["id"], ""),
    ("refund.created", REFUND, GatewayEventKind.REFUND, REFUND["id"], ""),
    ("refund.updated", REFUND, GatewayEventKind.REFUND, REFUND["id"], ""),
    ("refund.failed", REFUND | {"status": "failed"}, GatewayEventKind.REFUND, REFUND["id"], ""),
    ("charge.dispute.created", DISPUTE, GatewayEventKind.DISPUTE, "", DISPUTE["id"]),
    ("charge.dispute.updated", DISPUTE, GatewayEventKind.DISPUTE, "", DISPUTE["id"]),
    ("charge.dispute.closed", DISPUTE | {"status": "won"}, GatewayEventKind.DISPUTE, "", DISPUTE["id"]),
    ("charge.dispute.funds_withdrawn", DISPUTE, GatewayEventKind.DISPUTE, "", DISPUTE["id"]),
    ("charge.dispute.funds_reinstated", DISPUTE, GatewayEventKind.DISPUTE, "", DISPUTE["id"]),
    ("radar.early_fraud_warning.created", WARNING, GatewayEventKind.FRAUD_WARNING, "", ""),
    ("radar.early_fraud_warning.updated", WARNING | {"actionable": False}, GatewayEventKind.FRAUD_WARNING, "", ""),
]


@pytest.fixture(autouse=True)
def _stripe(settings: Any) -> None:
    stripe_webhooks_only(settings)
    get_redis_connection("default").flushdb()


def _verify(event: dict[str, Any]) -> Any:
    body, header = signed(event)
    return StripeGateway().webhook_verify(body=body.encode(), headers={"Stripe-Signature": header})


@pytest.mark.parametrize(("event_type", "obj", "kind", "refund_id", "dispute_id"), KINDS, ids=[k[0] for k in KINDS])
def test_each_refund_dispute_and_warning_event_names_the_payment_intent(
    event_type: str, obj: dict[str, Any], kind: GatewayEventKind, refund_id: str, dispute_id: str
) -> None:
    event = stripe_event(event_type, obj, event_id="evt_1MtwBwLkdIwHu7ixKinds001")

    parsed = _verify(event)

    assert (
        parsed.event_id,
        parsed.event_type,
        parsed.kind,
        parsed.object_id,
        parsed.session_id,
        parsed.transaction_id,
        parsed.refund_id,
        parsed.dispute_id,
    ) == ("evt_1MtwBwLkdIwHu7ixKinds001", event_type, kind, obj["id"], "", PAYMENT_INTENT, refund_id, dispute_id)
    assert parsed.signed_at is not None
    stored = StripeGateway().webhook_parse(signed(event)[0].encode())  # what the inbox reads back later
    assert stored == dataclasses.replace(parsed, signed_at=None)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("event_type", "obj", "kind", "refund_id", "dispute_id"), KINDS[::4], ids=[k[0] for k in KINDS[::4]]
)
def test_the_endpoint_stores_each_kind_once(
    event_type: str, obj: dict[str, Any], kind: GatewayEventKind, refund_id: str, dispute_id: str
) -> None:
    body, header = signed(stripe_event(event_type, obj, event_id="evt_1MtwBwLkdIwHu7ixStored01"))

    responses = [
        Client().post(WEBHOOK_URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)
        for _ in range(2)
    ]

    assert [r.json() for r in responses] == [
        {"received": True, "duplicate": False},
        {"received": True, "duplicate": True},
    ]
    with rls.acting_as(READER):
        stored = list(WebhookEvent.objects.values_list("event_type", "object_id", "status"))
    assert stored == [(event_type, obj["id"], "received")]


def test_an_expanded_payment_intent_is_named_by_its_id() -> None:
    expanded = REFUND | {"payment_intent": stripe_object("payment_intent", id=PAYMENT_INTENT)}

    parsed = _verify(stripe_event("refund.updated", expanded))

    assert (parsed.transaction_id, parsed.refund_id) == (PAYMENT_INTENT, REFUND["id"])


@pytest.mark.parametrize("payment_intent", [None, "", "pi_with space", "pi_\u00e9", 42, ["pi_1"]])
def test_a_payment_intent_that_is_not_a_stripe_id_names_no_transaction(payment_intent: object) -> None:
    parsed = _verify(stripe_event("charge.dispute.created", DISPUTE | {"payment_intent": payment_intent}))

    assert (parsed.kind, parsed.transaction_id, parsed.dispute_id) == (GatewayEventKind.DISPUTE, "", DISPUTE["id"])


def test_an_object_of_another_type_names_no_refund_or_dispute() -> None:
    charge_as_dispute = _verify(stripe_event("charge.dispute.created", REFUNDED_CHARGE))
    charge_as_refund = _verify(stripe_event("refund.created", REFUNDED_CHARGE))

    assert (charge_as_dispute.kind, charge_as_dispute.dispute_id, charge_as_dispute.transaction_id) == (
        GatewayEventKind.DISPUTE,
        "",
        PAYMENT_INTENT,
    )
    assert (charge_as_refund.kind, charge_as_refund.refund_id) == (GatewayEventKind.REFUND, "")


@pytest.mark.parametrize(
    "event_type", ["charge.succeeded", "charge.captured", "review.opened", "issuing_dispute.created"]
)
def test_other_charge_and_refund_events_are_ignored(event_type: str) -> None:
    parsed = _verify(stripe_event(event_type, REFUND))

    assert (parsed.kind, parsed.transaction_id, parsed.refund_id) == (GatewayEventKind.IGNORED, "", "")
