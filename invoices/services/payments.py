"""Money against an invoice: the checksum gate before a payment, and recording payment.

Every path that takes or changes money verifies the invoice checksum first; a mismatch
refuses the action, and its first detection is recorded, audited and alerted (and
committed even though the action is not: ``invoices.services.checksums``).
"""

from __future__ import annotations

import uuid

from django.utils import timezone

from audit.actions import AuditAction
from audit.unit_of_work import unit_of_work
from invoices.errors import (
    InvalidInvoiceError,
    InvoiceChecksumMismatchError,
    InvoiceStateError,
    PaymentAmountMismatchError,
)
from invoices.events import InvoiceEvent, invoice_event_record
from invoices.models import Invoice, InvoiceStatus
from invoices.selectors import invoice_get, invoice_get_for_update
from invoices.services.auditing import invoice_audit_record
from invoices.services.checksums import invoice_checksum_verify
from paymenter.money import Money
from paymenter.principals import Principal


def invoice_require_intact(*, principal: Principal, invoice_id: uuid.UUID | str, attempted: str) -> Invoice:
    """Verify the checksum before an action such as starting a payment (drafts pass).

    On a mismatch the action is refused; the first detection is recorded and alerted.
    """
    with unit_of_work(principal):
        invoice = invoice_get(principal=principal, invoice_id=invoice_id)
        intact = invoice_checksum_verify(principal=principal, invoice=invoice, attempted=attempted)
    if not intact:
        raise InvoiceChecksumMismatchError()
    return invoice


def invoice_mark_paid(
    *, principal: Principal, invoice_id: uuid.UUID | str, amount: Money, payment_reference: str
) -> Invoice:
    """Record full payment of an open (or uncollectible) invoice.

    Checked in this order, with the invoice locked, before anything is written: the
    checksum of an issued invoice (409 ``invoice_checksum_mismatch``; its first detection
    is recorded and alerted), the state (409 ``invoice_invalid_state``), then the amount
    and currency against what is due (422 ``payment_amount_mismatch``). A refusal changes
    nothing on the invoice and records no ``invoice.paid`` event.
    """
    if not isinstance(amount, Money):
        raise TypeError("amount must be Money")
    if not payment_reference or len(payment_reference) > 255:
        raise InvalidInvoiceError({"payment_reference": ["required, at most 255 characters"]})
    with unit_of_work(principal):
        invoice = invoice_get_for_update(principal=principal, invoice_id=invoice_id)
        intact = invoice_checksum_verify(principal=principal, invoice=invoice, attempted="mark_paid")
        if intact:
            if invoice.status not in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE):
                raise InvoiceStateError(status=invoice.status, action="paid")
            due = Money(invoice.amount_due_minor, invoice.currency)
            if amount.currency != due.currency or amount.minor != due.minor:
                raise PaymentAmountMismatchError(expected=due.format(), received=amount.format())
            invoice.amount_paid_minor += amount.minor
            invoice.status = InvoiceStatus.PAID
            invoice.paid_at = timezone.now()
            invoice.save(update_fields=["amount_paid_minor", "status", "paid_at"])
            invoice_event_record(event=InvoiceEvent.PAID, invoice=invoice)
            invoice_audit_record(
                action=AuditAction.INVOICE_PAID,
                principal=principal,
                invoice=invoice,
                payload={
                    "amount_minor": amount.minor,
                    "currency": amount.currency,
                    "payment_reference": payment_reference,
                },
            )
    if not intact:
        raise InvoiceChecksumMismatchError()
    return invoice
