"""Provisioning callbacks to O2S: what happened to an invoice, signed, in order.

``o2s_callback_record`` is called by the invoice services inside their transaction; it
writes an outbox message (topic ``o2s.callback``) whose payload is the exact event body
O2S receives. Signing and HTTP delivery happen in the worker (``billing.callback_delivery``).
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from django.utils import timezone

from invoices.models import Invoice
from paymenter.outbox import outbox_enqueue

TOPIC = "o2s.callback"


class CallbackEventType(StrEnum):
    INVOICE_PAID = "invoice.paid"
    INVOICE_REFUNDED = "invoice.refunded"
    INVOICE_PARTIALLY_REFUNDED = "invoice.partially_refunded"
    INVOICE_DISPUTED = "invoice.disputed"
    INVOICE_VOIDED = "invoice.voided"
    PAYMENT_REVIEW_REQUIRED = "payment.review_required"
    PAYMENT_REVIEW_RELEASED = "payment.review_released"


def callback_body(*, event_id: uuid.UUID, event_type: CallbackEventType, invoice: Invoice) -> dict[str, Any]:
    return {
        "id": f"evt_{event_id.hex}",
        "type": event_type.value,
        "created_at": timezone.now().isoformat().replace("+00:00", "Z"),
        "data": {
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
        },
    }


def o2s_callback_record(*, event_type: CallbackEventType, invoice: Invoice) -> uuid.UUID:
    """Record the callback in the caller's transaction; returns its event id."""
    event_id = uuid.uuid4()
    outbox_enqueue(
        topic=TOPIC,
        payload=callback_body(event_id=event_id, event_type=event_type, invoice=invoice),
        ordering_key=f"invoice:{invoice.id}",
        customer_id=invoice.customer_id,
        event_id=event_id,
    )
    return event_id
