"""Money going back: credit notes, the refunded total, and disputes, on the invoice's side.

Not entry points: the payments ledger (``gateways.services.refunds`` / ``disputes``) calls
these in its unit of work with the invoice locked and its checksum verified, after writing
its own rows. They set what the invoice shows (amount refunded, status), issue the credit
note, audit, and record the domain event from which the O2S callback and the customer's
e-mail follow.

Status after money went back: ``refunded`` once everything paid was refunded, else
``partially_refunded``; an invoice with an open dispute stays ``disputed`` until the
dispute closes. A dispute won restores the status the amounts say; a lost one leaves the
invoice ``disputed`` (the money is gone: staff decide what follows).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import Sum

from audit.actions import AuditAction
from invoices import credit_notes, numbering
from invoices.errors import InvoiceStateError
from invoices.events import InvoiceEvent, invoice_event_record
from invoices.models import CreditNote, CreditNoteLine, Invoice, InvoiceLine, InvoiceStatus
from invoices.pricing import seller_today
from invoices.services.auditing import invoice_audit_record
from paymenter.principals import Principal

REFUNDABLE = (InvoiceStatus.PAID, InvoiceStatus.PARTIALLY_REFUNDED, InvoiceStatus.DISPUTED)
"""The states an invoice's applied payments can be refunded in (all of it was paid)."""


def _status_from_amounts(invoice: Invoice) -> InvoiceStatus:
    if invoice.amount_refunded_minor == 0:
        return InvoiceStatus.PAID
    if invoice.amount_refunded_minor >= invoice.amount_paid_minor:
        return InvoiceStatus.REFUNDED
    return InvoiceStatus.PARTIALLY_REFUNDED


def credit_note_summary(credit_note: CreditNote) -> dict[str, Any]:
    return {
        "credit_note_id": str(credit_note.id),
        "credit_note_number": credit_note.number,
        "currency": credit_note.currency,
        "subtotal_minor": credit_note.subtotal_minor,
        "tax_minor": credit_note.tax_minor,
        "total_minor": credit_note.total_minor,
    }


def _credit_note_issue(*, invoice: Invoice, amount_minor: int, reason: str) -> CreditNote:
    lines = list(InvoiceLine.objects.filter(invoice_id=invoice.id))
    credited = {
        row["invoice_line_id"]: int(row["total"])
        for row in CreditNoteLine.objects.filter(credit_note__invoice_id=invoice.id)
        .values("invoice_line_id")
        .annotate(total=Sum("total_minor"))
    }
    parts = credit_notes.credit_allocate(lines=lines, credited=credited, amount_minor=amount_minor)
    issue_date = seller_today()
    credit_note = CreditNote(
        invoice=invoice,
        customer_id=invoice.customer_id,
        number=numbering.credit_note_number_next(issue_date=issue_date),
        currency=invoice.currency,
        issue_date=issue_date,
        reason=reason[:500],
        seller_details=invoice.seller_details,
        buyer_details=invoice.buyer_details,
        subtotal_minor=sum(part.subtotal_minor for part in parts),
        tax_minor=sum(part.tax_minor for part in parts),
        total_minor=amount_minor,
    )
    note_lines = [
        CreditNoteLine(
            credit_note=credit_note,
            invoice_line=part.invoice_line,
            customer_id=invoice.customer_id,
            position=position,
            description=part.invoice_line.description,
            tax_code=part.invoice_line.tax_code,
            tax_rate=part.invoice_line.tax_rate,
            subtotal_minor=part.subtotal_minor,
            tax_minor=part.tax_minor,
            total_minor=part.total_minor,
        )
        for position, part in enumerate(parts, start=1)
    ]
    credit_note.checksum_key_id, credit_note.checksum = credit_notes.compute(credit_note, note_lines)
    credit_note.save(force_insert=True)
    CreditNoteLine.objects.bulk_create(note_lines)
    return credit_note


def invoice_refund_apply(
    *, principal: Principal, invoice: Invoice, amount_minor: int, reason: str, refund: Mapping[str, Any]
) -> CreditNote:
    """Issue the credit note for a refund of ``amount_minor`` (GST-inclusive) of ``invoice``
    and add it to the amount refunded; records ``invoice.refunded`` or
    ``invoice.partially_refunded`` (carrying ``refund`` and ``credit_note``) and audits both.

    The caller (the refunds ledger) has checked that ``amount_minor`` is refundable from the
    payment; the database's ``invoice_refund_le_paid`` constraint backs the invoice total.
    """
    if invoice.status not in REFUNDABLE:
        raise InvoiceStateError(status=invoice.status, action="refunded")
    credit_note = _credit_note_issue(invoice=invoice, amount_minor=amount_minor, reason=reason)
    invoice.amount_refunded_minor += amount_minor
    if invoice.status != InvoiceStatus.DISPUTED:
        invoice.status = _status_from_amounts(invoice)
    invoice.save(update_fields=["amount_refunded_minor", "status"])
    fully = invoice.amount_refunded_minor >= invoice.amount_paid_minor
    event = InvoiceEvent.REFUNDED if fully else InvoiceEvent.PARTIALLY_REFUNDED
    action = AuditAction.INVOICE_REFUNDED if fully else AuditAction.INVOICE_PARTIALLY_REFUNDED
    summary = credit_note_summary(credit_note)
    invoice_event_record(event=event, invoice=invoice, extra={"refund": dict(refund), "credit_note": summary})
    invoice_audit_record(
        action=AuditAction.CREDIT_NOTE_ISSUED, principal=principal, invoice=invoice, payload={**summary, **refund}
    )
    invoice_audit_record(action=action, principal=principal, invoice=invoice, payload=dict(refund))
    return credit_note


def invoice_dispute_open(*, principal: Principal, invoice: Invoice, dispute: Mapping[str, Any]) -> None:
    """Mark ``invoice`` disputed and tell O2S (``invoice.disputed``), so it can suspend."""
    invoice.status = InvoiceStatus.DISPUTED
    invoice.save(update_fields=["status"])
    invoice_event_record(event=InvoiceEvent.DISPUTED, invoice=invoice, extra={"dispute": dict(dispute)})
    invoice_audit_record(action=AuditAction.DISPUTE_OPENED, principal=principal, invoice=invoice, payload=dict(dispute))


def invoice_dispute_close(
    *, principal: Principal, invoice: Invoice, dispute: Mapping[str, Any], won: bool, others_open: bool
) -> None:
    """A dispute of ``invoice`` was decided. Won, with no other dispute open: the status
    the amounts say comes back. Lost: the invoice stays ``disputed``. O2S hears
    ``invoice.dispute_closed`` (with the outcome) either way."""
    if won and not others_open and invoice.status == InvoiceStatus.DISPUTED:
        invoice.status = _status_from_amounts(invoice)
        invoice.save(update_fields=["status"])
    invoice_event_record(event=InvoiceEvent.DISPUTE_CLOSED, invoice=invoice, extra={"dispute": dict(dispute)})
    invoice_audit_record(action=AuditAction.DISPUTE_CLOSED, principal=principal, invoice=invoice, payload=dict(dispute))
