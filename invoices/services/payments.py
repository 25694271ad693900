"""Money against an invoice: applying what the payments ledger says was paid.

Every path that takes or changes money verifies the invoice checksum first (the ledger,
``gateways.services``, before it calls this); a mismatch refuses the action, and its first
detection is recorded, audited and alerted (and committed even though the action is not:
``invoices.services.checksums``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils import timezone

from audit.actions import AuditAction
from invoices.errors import InvoiceStateError, PaymentAmountMismatchError
from invoices.events import InvoiceEvent, invoice_event_record
from invoices.models import Invoice, InvoiceStatus
from invoices.services.auditing import invoice_audit_record
from paymenter.money import Money
from paymenter.principals import Principal


def invoice_payments_apply(
    *, principal: Principal, invoice: Invoice, amount_paid_minor: int, payment: Mapping[str, Any]
) -> InvoiceEvent:
    """Set what ``invoice`` has been paid to the ledger's total and move it to ``paid``
    exactly when nothing is left due; records ``invoice.paid`` or, while something is still
    due, ``payment.recorded``, and the audit event of the same name.

    Not an entry point: the ledger (``gateways.services.ledger.payment_record``) calls it in
    its unit of work with ``invoice`` locked and its checksum verified, after writing the
    payment row; ``amount_paid_minor`` is the sum of the invoice's applied payments, so the
    stored figure is derived from the rows and never edited on its own. ``payment``
    describes the payment that caused it (event data and audit payload).
    """
    if invoice.status not in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE):
        raise InvoiceStateError(status=invoice.status, action="paid")
    if not 0 <= amount_paid_minor <= invoice.total_minor:
        raise PaymentAmountMismatchError(
            expected=Money(invoice.total_minor, invoice.currency).format(),
            received=Money(amount_paid_minor, invoice.currency).format(),
        )
    invoice.amount_paid_minor = amount_paid_minor
    update_fields = ["amount_paid_minor"]
    if amount_paid_minor == invoice.total_minor:
        invoice.status = InvoiceStatus.PAID
        invoice.paid_at = timezone.now()
        update_fields += ["status", "paid_at"]
        event, action = InvoiceEvent.PAID, AuditAction.INVOICE_PAID
    else:
        event, action = InvoiceEvent.PAYMENT_RECORDED, AuditAction.PAYMENT_RECORDED
    invoice.save(update_fields=update_fields)
    invoice_event_record(event=event, invoice=invoice, extra={"payment": dict(payment)})
    invoice_audit_record(action=action, principal=principal, invoice=invoice, payload=dict(payment))
    return event
