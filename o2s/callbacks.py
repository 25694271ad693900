"""Provisioning callbacks to O2S: which domain events O2S hears of, and as what.

O2S subscribes to domain events in ``events/subscriptions.py``; each one is recorded by the
domain service that caused it (``paymenter.outbox.domain_event_record``) as an outbox
message of topic ``o2s.callback`` whose payload is the exact event body O2S receives
(docs/callbacks.md). Signing and HTTP delivery happen in the worker
(``o2s.callback_delivery``).
"""

from __future__ import annotations

from enum import StrEnum

TOPIC = "o2s.callback"


class CallbackEventType(StrEnum):
    """The ``type`` values O2S is told of (docs/callbacks.md); the domain event types of
    the same names."""

    INVOICE_PAID = "invoice.paid"
    PAYMENT_RECORDED = "payment.recorded"
    INVOICE_REFUNDED = "invoice.refunded"
    INVOICE_PARTIALLY_REFUNDED = "invoice.partially_refunded"
    INVOICE_DISPUTED = "invoice.disputed"
    INVOICE_DISPUTE_CLOSED = "invoice.dispute_closed"
    INVOICE_VOIDED = "invoice.voided"
    PAYMENT_REVIEW_REQUIRED = "payment.review_required"
    PAYMENT_REVIEW_RELEASED = "payment.review_released"


O2S_CALLBACK_EVENT_TYPES = frozenset(CallbackEventType)
