"""Disputes and reversals: recorded once per gateway dispute, the invoice marked disputed and
O2S told (``invoice.disputed``) so it can suspend; a decision updates the record, is audited
and told (``invoice.dispute_closed``); won restores the invoice, lost leaves it disputed.
Early fraud warnings are kept once. What names no payment of ours writes nothing.

These call the ledger with what a gateway reports (``GatewayDispute``), as the inbox does
after fetching it back; the webhook paths are tested per gateway."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from audit.models import AuditEvent
from gateways.base import (
    GatewayCode,
    GatewayDispute,
    GatewayDisputeStatus,
    GatewayFraudWarning,
    PaymentMethod,
)
from gateways.models import Dispute, FraudWarning, Payment
from gateways.services import disputes_settle, fraud_warning_record
from invoices.models import Invoice
from paymenter import rls
from paymenter.models import OutboxMessage
from paymenter.money import Money
from paymenter.principals import SystemPrincipal
from tests.factories import make_customer, make_invoice, pay_invoice

pytestmark = pytest.mark.django_db

SYSTEM = SystemPrincipal(label="test:disputes")
TOTAL = 3190


def _card_paid() -> tuple[Invoice, Payment]:
    invoice = make_invoice(make_customer())
    payment = pay_invoice(
        invoice,
        transaction_id=f"pi_test_{uuid.uuid4().hex[:10]}",
        gateway=GatewayCode.STRIPE,
        method=PaymentMethod.CARD,
    )
    return invoice, payment


def _dispute(
    payment: Payment, status: GatewayDisputeStatus = GatewayDisputeStatus.OPEN, dispute_id: str = "dp_test_1"
) -> GatewayDispute:
    return GatewayDispute(
        gateway=GatewayCode.STRIPE,
        dispute_id=dispute_id,
        transaction_id=payment.transaction_id,
        status=status,
        amount=Money(payment.amount_minor, payment.currency),
        reason="fraudulent",
        gateway_status=str(status),
        evidence_due_by=datetime(2026, 12, 10, tzinfo=UTC),
    )


def _state(invoice: Invoice) -> dict[str, Any]:
    with rls.acting_as(SYSTEM):
        return {
            "status": Invoice.objects.get(pk=invoice.pk).status,
            "disputes": list(Dispute.objects.filter(invoice_id=invoice.pk).values_list("gateway_dispute_id", "status")),
            "callbacks": list(
                OutboxMessage.objects.filter(ordering_key=f"invoice:{invoice.id}", topic="o2s.callback")
                .exclude(payload__type__in=["invoice.issued", "invoice.paid"])
                .order_by("id")
                .values_list("payload__type", flat=True)
            ),
            "audit": list(
                AuditEvent.objects.filter(object_id=str(invoice.id), action__startswith="dispute.")
                .order_by("sequence")
                .values_list("action", flat=True)
            ),
        }


def test_a_dispute_marks_the_invoice_disputed_and_tells_o2s_once() -> None:
    invoice, payment = _card_paid()

    first = disputes_settle(principal=SYSTEM, reported=[_dispute(payment)], recorded_by="test")
    again = disputes_settle(principal=SYSTEM, reported=[_dispute(payment)], recorded_by="test")

    assert (first[0].opened, again[0].opened) == (True, False)
    assert _state(invoice) == {
        "status": "disputed",
        "disputes": [("dp_test_1", "open")],
        "callbacks": ["invoice.disputed"],
        "audit": ["dispute.opened"],
    }


@pytest.mark.parametrize(
    ("outcome", "invoice_status"), [(GatewayDisputeStatus.WON, "paid"), (GatewayDisputeStatus.LOST, "disputed")]
)
def test_a_decided_dispute_is_recorded_audited_and_told_once(
    outcome: GatewayDisputeStatus, invoice_status: str
) -> None:
    invoice, payment = _card_paid()
    disputes_settle(principal=SYSTEM, reported=[_dispute(payment)], recorded_by="test")

    closed = disputes_settle(principal=SYSTEM, reported=[_dispute(payment, outcome)], recorded_by="test")
    disputes_settle(principal=SYSTEM, reported=[_dispute(payment, outcome)], recorded_by="test")

    assert closed[0].closed
    assert _state(invoice) == {
        "status": invoice_status,
        "disputes": [("dp_test_1", outcome.value)],
        "callbacks": ["invoice.disputed", "invoice.dispute_closed"],
        "audit": ["dispute.opened", "dispute.closed"],
    }


def test_a_decision_is_never_reversed() -> None:
    invoice, payment = _card_paid()
    disputes_settle(principal=SYSTEM, reported=[_dispute(payment, GatewayDisputeStatus.LOST)], recorded_by="test")

    disputes_settle(principal=SYSTEM, reported=[_dispute(payment, GatewayDisputeStatus.OPEN)], recorded_by="test")
    disputes_settle(principal=SYSTEM, reported=[_dispute(payment, GatewayDisputeStatus.WON)], recorded_by="test")

    assert _state(invoice)["disputes"] == [("dp_test_1", "lost")]
    assert _state(invoice)["status"] == "disputed"


def test_an_invoice_stays_disputed_while_another_dispute_is_open() -> None:
    invoice, payment = _card_paid()
    disputes_settle(
        principal=SYSTEM,
        reported=[_dispute(payment, dispute_id="dp_a"), _dispute(payment, dispute_id="dp_b")],
        recorded_by="test",
    )

    disputes_settle(principal=SYSTEM, reported=[_dispute(payment, GatewayDisputeStatus.WON, "dp_a")], recorded_by="t")
    assert _state(invoice)["status"] == "disputed"
    disputes_settle(principal=SYSTEM, reported=[_dispute(payment, GatewayDisputeStatus.WON, "dp_b")], recorded_by="t")
    assert _state(invoice)["status"] == "paid"


def test_a_dispute_of_a_payment_not_recorded_here_writes_nothing() -> None:
    invoice, _ = _card_paid()
    stranger = GatewayDispute(
        gateway=GatewayCode.STRIPE,
        dispute_id="dp_stranger",
        transaction_id="pi_not_ours",
        status=GatewayDisputeStatus.OPEN,
        amount=Money(100, "AUD"),
    )
    with rls.acting_as(SYSTEM):
        before = (Dispute.objects.count(), AuditEvent.objects.count(), OutboxMessage.objects.count())

    assert disputes_settle(principal=SYSTEM, reported=[stranger], recorded_by="test") == []

    with rls.acting_as(SYSTEM):
        assert (Dispute.objects.count(), AuditEvent.objects.count(), OutboxMessage.objects.count()) == before
    assert _state(invoice)["status"] == "paid"


def test_an_early_fraud_warning_is_kept_once_and_one_about_a_stranger_is_not() -> None:
    _, payment = _card_paid()
    warning = GatewayFraudWarning(
        gateway=GatewayCode.STRIPE,
        warning_id="issfr_test_1",
        transaction_id=payment.transaction_id,
        fraud_type="made_with_stolen_card",
        actionable=True,
    )

    kept = fraud_warning_record(principal=SYSTEM, reported=warning)
    again = fraud_warning_record(principal=SYSTEM, reported=warning)
    with rls.acting_as(SYSTEM):
        before = AuditEvent.objects.count()
    stranger = fraud_warning_record(
        principal=SYSTEM,
        reported=GatewayFraudWarning(
            gateway=GatewayCode.STRIPE, warning_id="issfr_x", transaction_id="pi_nope", fraud_type="x", actionable=False
        ),
    )

    assert kept is not None
    assert again is not None
    assert (kept.pk, stranger) == (again.pk, None)
    with rls.acting_as(SYSTEM):
        assert FraudWarning.objects.filter(payment_id=payment.pk).count() == 1
        assert (
            AuditEvent.objects.filter(action="fraud_warning.recorded", object_id=str(payment.invoice_id)).count() == 1
        )
        assert AuditEvent.objects.count() == before
