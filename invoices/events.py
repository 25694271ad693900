"""The domain events of invoices: what happened, recorded in the transaction of the change.

Who hears of an event is decided in the channel layer (``events/subscriptions.py``); the
invoice services only say what happened. Every event of an invoice carries the same
snapshot of it and is ordered per invoice (``ordering_key``), so each consumer sees the
invoice's history in the order it happened.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from invoices.models import Invoice
from paymenter.models import OutboxMessage
from paymenter.outbox import domain_event_record, domain_event_subscribed


class InvoiceEvent(StrEnum):
    ISSUED = "invoice.issued"
    PAID = "invoice.paid"
    PAYMENT_RECORDED = "payment.recorded"
    """A payment that leaves something due (a partial payment)."""
    VOIDED = "invoice.voided"
    REFUNDED = "invoice.refunded"
    PARTIALLY_REFUNDED = "invoice.partially_refunded"
    DISPUTED = "invoice.disputed"
    DISPUTE_CLOSED = "invoice.dispute_closed"
    """A dispute was decided (``dispute.status``: won or lost)."""
    PAYMENT_REVIEW_REQUIRED = "payment.review_required"
    """The fraud rules held a payment for staff review: the invoice stays unpaid meanwhile."""
    PAYMENT_REVIEW_RELEASED = "payment.review_released"
    """Staff approved a reviewed payment; ``invoice.paid`` / ``payment.recorded`` follows."""
    PAYMENT_FRAUD_WARNING = "payment.fraud_warning"
    """The card network warned of fraud on a payment (a risk signal; not sent to O2S)."""


def invoice_snapshot(invoice: Invoice) -> dict[str, Any]:
    """The invoice as the event left it (the ``data`` of every invoice event)."""
    return {
        "invoice_id": str(invoice.id),
        "invoice_number": invoice.number,
        "customer_id": str(invoice.customer_id),
        "customer_external_id": invoice.customer.external_id,
        "status": invoice.status,
        "currency": invoice.currency,
        "total_minor": invoice.total_minor,
        "amount_paid_minor": invoice.amount_paid_minor,
        "amount_refunded_minor": invoice.amount_refunded_minor,
        "amount_due_minor": invoice.amount_due_minor,
    }


def invoice_event_record(
    *, event: InvoiceEvent, invoice: Invoice, extra: Mapping[str, Any] | None = None
) -> list[OutboxMessage]:
    """Record ``event`` of ``invoice`` in the caller's transaction; one message per subscriber.

    ``extra`` adds keys beside the snapshot (a payment event carries ``payment``).
    """
    if not domain_event_subscribed(event.value):  # nobody listens: no snapshot, no query
        return []
    return domain_event_record(
        event_type=event.value,
        data={**invoice_snapshot(invoice), **(extra or {})},
        ordering_key=f"invoice:{invoice.id}",
        customer_id=invoice.customer_id,
    )
