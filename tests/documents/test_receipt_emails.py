"""The receipt and credit-note e-mails carry their PDF, rendered from the rows the event
names; a document that cannot be rendered retries the message and sends nothing."""

from __future__ import annotations

import uuid

import pytest
from django.core import mail

from events.delivery import outbox_deliver_message
from invoices.models import CreditNote
from paymenter import rls
from paymenter.models import OutboxMessage, OutboxStatus
from tests.documents.support import READER, pdf_text, refund
from tests.factories import make_customer, make_invoice, pay_invoice

pytestmark = pytest.mark.django_db


def _receipts(customer_id: uuid.UUID) -> list[OutboxMessage]:
    with rls.acting_as(READER):
        return list(OutboxMessage.objects.filter(topic="portal.receipt", customer_id=customer_id).order_by("id"))


def test_the_receipt_e_mail_carries_the_receipt_pdf() -> None:
    customer = make_customer(email="accounts@documents.example")
    invoice = make_invoice(customer)
    payment = pay_invoice(invoice, transaction_id="BT-MAIL-1")
    (message,) = _receipts(customer.id)
    assert outbox_deliver_message(message_id=message.id) == OutboxStatus.DELIVERED
    (email,) = mail.outbox
    assert email.to == ["accounts@documents.example"]
    ((filename, content, mimetype),) = email.attachments
    assert filename == f"receipt-{invoice.number}-{str(payment.id)[:8]}.pdf"
    assert mimetype == "application/pdf"
    text = pdf_text(content)
    assert "Receipt" in text
    assert "Reference BT-MAIL-1" in text
    assert str(invoice.number) in text


def test_the_refund_e_mail_carries_the_credit_note_pdf() -> None:
    customer = make_customer()
    invoice = make_invoice(customer)
    refund(pay_invoice(invoice), 1100)
    with rls.acting_as(READER):
        note = CreditNote.objects.get(invoice_id=invoice.id)
    for message in _receipts(customer.id):
        outbox_deliver_message(message_id=message.id)
    credit_note_mail = [email for email in mail.outbox if note.number in str(email.subject)]
    assert len(credit_note_mail) == 1
    ((filename, content, mimetype),) = credit_note_mail[0].attachments
    assert (filename, mimetype) == (f"{note.number}.pdf", "application/pdf")
    text = pdf_text(content)
    assert "Adjustment note" in text
    assert note.number in text
    assert "GST reversed -AUD 1.00" in text  # 11.00 incl. GST of a 10% line


def test_a_receipt_whose_pdf_cannot_be_rendered_is_retried_and_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    customer = make_customer()
    pay_invoice(make_invoice(customer))
    (message,) = _receipts(customer.id)

    def broken(*args: object, **kwargs: object) -> bytes:
        raise OSError("no fonts")

    monkeypatch.setattr("weasyprint.HTML.write_pdf", broken)  # the third-party renderer fails
    assert outbox_deliver_message(message_id=message.id) == OutboxStatus.PENDING
    assert mail.outbox == []
    with rls.acting_as(READER):
        stored = OutboxMessage.objects.get(pk=message.pk)
    assert stored.attempts == 1
    assert stored.last_error == "document not rendered: OSError"
