"""Receipt e-mails: the customer hears of every payment that counts toward an invoice, and
gets the credit note of every refund.

Subscribed to ``invoice.paid`` and ``payment.recorded`` (a receipt) and to
``invoice.refunded`` and ``invoice.partially_refunded`` (the credit note: number, amount
refunded, GST reversed) in ``events/subscriptions.py``, so the e-mail follows from the same
outbox message as the money's other effects: once per payment or refund, however many
webhooks, returns and reconciliations reported it. The e-mail is
built from the event's snapshot (what was paid, by which method, for which invoice), not
from the rows as they are when the worker gets to it. Delivery is at least once: a worker
that dies between the SMTP server's acceptance and the commit sends it again.

The PDF goes with it (``portal/documents.py``): the receipt of the payment the event names
(``payment.payment_id``), or the adjustment note of the refund (``credit_note.credit_note_id``),
rendered from those rows, which never change once written. A rendering failure retries the
message (the e-mail without its document would be a receipt the customer cannot file); a
document whose checksum fails is left off, and the e-mail says nothing read from it.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.template.loader import render_to_string

from billing.errors import CustomerNotFoundError
from billing.selectors import customer_get
from gateways.models import Payment
from invoices import credit_notes
from invoices.models import CreditNote
from invoices.services import invoice_checksum_verify
from paymenter import rls
from paymenter.models import OutboxMessage
from paymenter.money import Money
from paymenter.outbox import OutboxHandlerError
from paymenter.principals import SystemPrincipal
from portal.documents import credit_note_pdf, receipt_pdf

logger = logging.getLogger(__name__)

RECEIPT_TOPIC = "portal.receipt"
RECEIPT_PRINCIPAL = SystemPrincipal(label="worker:receipts")
METHOD_NAMES = {"card": "Card", "paypal": "PayPal", "bank_transfer": "Bank transfer"}


def receipt_context(data: dict[str, Any]) -> dict[str, Any]:
    payment = data.get("payment") or {}
    currency = str(data["currency"])
    return {
        "seller_name": settings.SELLER_NAME,
        "seller_abn": settings.SELLER_ABN,
        "invoice_number": data.get("invoice_number"),
        "paid": Money(int(payment.get("amount_minor", 0)), str(payment.get("currency", currency))).format(),
        "method": METHOD_NAMES.get(str(payment.get("method", "")), str(payment.get("method", ""))),
        "reference": payment.get("transaction_id", ""),
        "total": Money(int(data["total_minor"]), currency).format(),
        "amount_due": Money(int(data["amount_due_minor"]), currency).format(),
        "fully_paid": data.get("status") == "paid",
    }


REFUND_EVENT_TYPES = frozenset({"invoice.refunded", "invoice.partially_refunded"})


def credit_note_context(data: dict[str, Any]) -> dict[str, Any]:
    note = data.get("credit_note") or {}
    currency = str(note.get("currency") or data["currency"])
    return {
        "seller_name": settings.SELLER_NAME,
        "seller_abn": settings.SELLER_ABN,
        "invoice_number": data.get("invoice_number"),
        "credit_note_number": note.get("credit_note_number", ""),
        "refunded": Money(int(note.get("total_minor", 0)), currency).format(),
        "gst_reversed": Money(int(note.get("tax_minor", 0)), currency).format(),
        "subtotal": Money(int(note.get("subtotal_minor", 0)), currency).format(),
        "refunded_in_total": Money(int(data["amount_refunded_minor"]), str(data["currency"])).format(),
        "fully_refunded": data.get("status") == "refunded",
    }


def _email_of(message: OutboxMessage, data: dict[str, Any]) -> tuple[str, str]:
    """(subject, body) of the e-mail ``message`` asks for."""
    if message.payload.get("type") in REFUND_EVENT_TYPES:
        context = credit_note_context(data)
        subject = (
            f"Credit note {context['credit_note_number']} for invoice {context['invoice_number']}"
            f" - {settings.SELLER_NAME}"
        )
        return subject, render_to_string("portal/email/credit_note.txt", context)
    context = receipt_context(data)
    subject = f"Receipt for invoice {context['invoice_number']} - {settings.SELLER_NAME}"
    return subject, render_to_string("portal/email/receipt.txt", context)


def _document_of(message: OutboxMessage, data: dict[str, Any]) -> tuple[str, bytes] | None:
    """(filename, PDF) of the document that goes with the e-mail, or ``None`` when the event
    names none (an event recorded before documents existed) or it fails its checksum.
    Run as :data:`RECEIPT_PRINCIPAL`. Raises :class:`OutboxHandlerError` (retry) when the
    row it names is not there yet or cannot be rendered."""
    if message.payload.get("type") in REFUND_EVENT_TYPES:
        note_id = (data.get("credit_note") or {}).get("credit_note_id")
        if not note_id:
            return None
        note = CreditNote.objects.select_related("invoice").filter(id=note_id).first()
        if note is None:
            raise OutboxHandlerError("credit note of the refund not found")
        lines = list(note.lines.all())
        if not credit_notes.is_valid(note, lines):
            logger.error("credit note %s fails its checksum: e-mailed without its PDF", note.number)
            return None
        return f"{note.number}.pdf", _rendered(lambda: credit_note_pdf(note, lines))
    payment_id = (data.get("payment") or {}).get("payment_id")
    if not payment_id:
        return None
    payment = Payment.objects.select_related("invoice").filter(id=payment_id).first()
    if payment is None:
        raise OutboxHandlerError("payment of the receipt not found")
    invoice = payment.invoice
    if not invoice_checksum_verify(principal=RECEIPT_PRINCIPAL, invoice=invoice, attempted="receipt_pdf"):
        logger.error("invoice %s fails its checksum: receipt e-mailed without its PDF", invoice.number)
        return None
    return f"receipt-{invoice.number}-{str(payment.id)[:8]}.pdf", _rendered(lambda: receipt_pdf(payment, invoice))


def _rendered(render: Callable[[], bytes]) -> bytes:
    try:
        return render()
    except Exception as exc:  # any renderer failure (fonts, Pango, a template): retry
        raise OutboxHandlerError(f"document not rendered: {type(exc).__name__}") from exc


def deliver_receipt(message: OutboxMessage) -> None:
    """The outbox handler of :data:`RECEIPT_TOPIC`."""
    data: dict[str, Any] = dict(message.payload["data"])
    try:
        customer = customer_get(principal=RECEIPT_PRINCIPAL, customer_id=data["customer_id"])
    except CustomerNotFoundError:
        logger.error(  # noqa: TRY400 - a missing customer is a finding, not a crash
            "receipt for invoice %s: customer not found", data.get("invoice_number")
        )
        return
    subject, body = _email_of(message, data)
    email = EmailMessage(
        subject=subject,
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[str(customer.email)],
        headers={"X-Paymenter-Event-Id": str(message.payload.get("id", ""))},
    )
    with rls.acting_as(RECEIPT_PRINCIPAL):
        document = _document_of(message, data)
    if document is not None:
        email.attach(document[0], document[1], "application/pdf")
    try:
        email.send()
    except (smtplib.SMTPException, OSError) as exc:
        raise OutboxHandlerError(f"receipt e-mail not sent: {type(exc).__name__}") from exc
