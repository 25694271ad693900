"""Disputes, reversals and early fraud warnings: recorded once, from what the gateway says.

The inbox fetches a dispute back (``Gateway.disputes_fetch``) before anything is recorded:
a webhook body only says where to look. :func:`disputes_settle` writes the dispute once per
gateway dispute id (unique) under the invoice's lock; a new one marks the invoice
``disputed`` and tells O2S (``invoice.disputed``) so it can suspend; a dispute decided
(won or lost) updates the record, closes it on the invoice (``invoice.dispute_closed``) and
is audited. A decision is never reversed here: a closed dispute stays as it was closed.

:func:`fraud_warning_record` keeps an early fraud warning (Stripe Radar) about a recorded
payment for the fraud rules and staff; it changes no money.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from audit.actions import AuditAction
from audit.services import audit_record
from audit.unit_of_work import unit_of_work
from gateways.base import GatewayDispute, GatewayDisputeStatus, GatewayFraudWarning
from gateways.models import Dispute, DisputeStatus, FraudWarning, Payment
from invoices.errors import InvoiceChecksumMismatchError
from invoices.events import InvoiceEvent, invoice_event_record
from invoices.selectors import invoice_get_for_update
from invoices.services import invoice_checksum_verify, invoice_dispute_close, invoice_dispute_open
from paymenter.principals import Principal

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DisputeSettlement:
    dispute: Dispute
    opened: bool = False
    """True only for the call that wrote the row."""
    closed: bool = False
    """True only for the call that recorded the decision."""


def dispute_summary(dispute: Dispute) -> dict[str, Any]:
    return {
        "dispute_id": str(dispute.id),
        "payment_id": str(dispute.payment_id),
        "gateway": dispute.gateway,
        "gateway_dispute_id": dispute.gateway_dispute_id,
        "amount_minor": dispute.amount_minor,
        "currency": dispute.currency,
        "status": dispute.status,
        "reason": dispute.reason,
    }


def disputes_settle(
    *, principal: Principal, reported: list[GatewayDispute], recorded_by: str
) -> list[DisputeSettlement]:
    """Record each reported dispute (idempotent); disputes of payments not recorded here
    are skipped and logged."""
    results: list[DisputeSettlement] = []
    for item in reported:
        settled = _dispute_settle(principal=principal, reported=item, recorded_by=recorded_by)
        if settled is not None:
            results.append(settled)
    return results


def _dispute_settle(*, principal: Principal, reported: GatewayDispute, recorded_by: str) -> DisputeSettlement | None:
    with unit_of_work(principal):
        payment = Payment.objects.filter(gateway=reported.gateway, transaction_id=reported.transaction_id).first()
        if payment is None:
            logger.warning(
                "%s dispute %s of %s: no such payment recorded here; skipped",
                reported.gateway,
                reported.dispute_id,
                reported.transaction_id,
            )
            return None
        invoice = invoice_get_for_update(principal=principal, invoice_id=payment.invoice_id)
        intact = invoice_checksum_verify(principal=principal, invoice=invoice, attempted="dispute")
        if intact:
            status = DisputeStatus(reported.status.value)
            dispute = (
                Dispute.objects.select_for_update(no_key=True)
                .filter(gateway=reported.gateway, gateway_dispute_id=reported.dispute_id)
                .first()
            )
            opened = dispute is None
            if dispute is None:
                dispute = Dispute.objects.create(
                    invoice=invoice,
                    customer_id=invoice.customer_id,
                    payment=payment,
                    gateway=reported.gateway,
                    gateway_dispute_id=reported.dispute_id[:255],
                    amount_minor=reported.amount.minor,
                    currency=reported.amount.currency,
                    status=DisputeStatus.OPEN,
                    reason=reported.reason[:255],
                    gateway_status=reported.gateway_status[:64],
                    evidence_due_by=reported.evidence_due_by,
                )
                invoice_dispute_open(principal=principal, invoice=invoice, dispute=dispute_summary(dispute))
            else:
                dispute.gateway_status = reported.gateway_status[:64]
                dispute.evidence_due_by = reported.evidence_due_by or dispute.evidence_due_by
                dispute.save(update_fields=["gateway_status", "evidence_due_by"])
            closed = dispute.status == DisputeStatus.OPEN and status != DisputeStatus.OPEN
            if closed:
                dispute.status = status
                dispute.closed_at = timezone.now()
                dispute.save(update_fields=["status", "closed_at"])
                others_open = (
                    Dispute.objects.filter(invoice_id=invoice.id, status=DisputeStatus.OPEN)
                    .exclude(pk=dispute.pk)
                    .exists()
                )
                invoice_dispute_close(
                    principal=principal,
                    invoice=invoice,
                    dispute={**dispute_summary(dispute), "recorded_by": recorded_by},
                    won=reported.status is GatewayDisputeStatus.WON,
                    others_open=others_open,
                )
    if not intact or dispute is None:
        raise InvoiceChecksumMismatchError()
    return DisputeSettlement(dispute=dispute, opened=opened, closed=closed)


def fraud_warning_record(*, principal: Principal, reported: GatewayFraudWarning) -> FraudWarning | None:
    """Keep an early fraud warning about a recorded payment, once (audited once). ``None``
    when the payment is not recorded here."""
    with unit_of_work(principal):
        payment = Payment.objects.filter(gateway=reported.gateway, transaction_id=reported.transaction_id).first()
        if payment is None:
            return None
        invoice = invoice_get_for_update(principal=principal, invoice_id=payment.invoice_id)
        existing = FraudWarning.objects.filter(gateway=reported.gateway, gateway_warning_id=reported.warning_id).first()
        if existing is not None:
            return existing
        warning = FraudWarning.objects.create(
            invoice=invoice,
            customer_id=invoice.customer_id,
            payment=payment,
            gateway=reported.gateway,
            gateway_warning_id=reported.warning_id[:255],
            fraud_type=reported.fraud_type[:64],
            actionable=reported.actionable,
        )
        audit_record(
            action=AuditAction.FRAUD_WARNING_RECORDED,
            principal=principal,
            object_type="invoice",
            object_id=str(invoice.id),
            customer_id=invoice.customer_id,
            payload={
                "number": invoice.number,
                "payment_id": str(payment.id),
                "gateway": reported.gateway,
                "gateway_warning_id": warning.gateway_warning_id,
                "fraud_type": warning.fraud_type,
                "actionable": warning.actionable,
            },
        )
        # a risk signal (the fraud rules put the customer's next payments to review); not for O2S
        invoice_event_record(
            event=InvoiceEvent.PAYMENT_FRAUD_WARNING,
            invoice=invoice,
            extra={
                "fraud_warning": {
                    "fraud_warning_id": str(warning.id),
                    "payment_id": str(payment.id),
                    "gateway": reported.gateway,
                    "gateway_warning_id": warning.gateway_warning_id,
                    "fraud_type": warning.fraud_type,
                    "actionable": warning.actionable,
                }
            },
        )
    return warning
