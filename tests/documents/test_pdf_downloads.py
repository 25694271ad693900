"""Downloading the PDFs: a portal user gets the documents of the customers they are granted
on (another customer's is the same 404 as a missing one), a visitor is sent to log in, the
holder of a pay link gets that invoice's PDF, and a tampered document is never rendered."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.shortcuts import resolve_url
from django.test import Client
from django.urls import reverse

from invoices.models import CreditNote, InvoiceChecksumMismatch
from invoices.pay_links import pay_link_token
from paymenter import rls
from tests.documents.support import READER, big_invoice, pdf_text, refund
from tests.factories import make_customer, make_invoice, make_member, pay_invoice

pytestmark = pytest.mark.django_db
FORGED_KEYS = "dev1:" + base64.b64encode(b"an-attacker-does-not-have-the-key!!").decode()


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _assert_pdf(response: Any, filename: str) -> str:
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="{filename}"'
    assert "no-store" in response["Cache-Control"]
    return pdf_text(response.content)


def test_a_customer_downloads_their_own_tax_invoice() -> None:
    customer = make_customer(name="Derwent Data Pty Ltd")
    invoice = big_invoice(customer)
    response = _client(make_member(customer)).get(reverse("portal:invoice-pdf", kwargs={"invoice_id": invoice.id}))
    text = _assert_pdf(response, f"{invoice.number}.pdf")
    assert "Tax invoice" in text
    assert "Derwent Data Pty Ltd" in text


def test_another_customers_documents_and_missing_ids_are_the_same_404() -> None:
    mine, theirs = make_customer(), make_customer()
    other_invoice = make_invoice(theirs)
    other_payment = pay_invoice(other_invoice)
    refund(other_payment, 1000)
    with rls.acting_as(READER):
        other_note = CreditNote.objects.get(invoice_id=other_invoice.id)
    client = _client(make_member(mine))
    for path in (
        reverse("portal:invoice-pdf", kwargs={"invoice_id": other_invoice.id}),
        reverse("portal:receipt-pdf", kwargs={"payment_id": other_payment.id}),
        reverse("portal:credit-note-pdf", kwargs={"credit_note_id": other_note.id}),
        reverse("portal:invoice-pdf", kwargs={"invoice_id": uuid.uuid4()}),
        reverse("portal:receipt-pdf", kwargs={"payment_id": uuid.uuid4()}),
        reverse("portal:credit-note-pdf", kwargs={"credit_note_id": uuid.uuid4()}),
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response["Content-Type"].startswith("text/html")
        assert str(other_invoice.number) not in response.content.decode()


def test_anonymous_visitors_are_sent_to_log_in() -> None:
    login = resolve_url(django_settings.LOGIN_URL)
    invoice = make_invoice(make_customer())
    payment = pay_invoice(invoice)
    for path in (
        reverse("portal:invoice-pdf", kwargs={"invoice_id": invoice.id}),
        reverse("portal:receipt-pdf", kwargs={"payment_id": payment.id}),
        reverse("portal:credit-note-pdf", kwargs={"credit_note_id": uuid.uuid4()}),
    ):
        response = Client().get(path)
        assert response.status_code == 302
        assert response["Location"].startswith(login + "?next=")


def test_a_customer_downloads_the_receipt_and_the_credit_note_of_their_invoice() -> None:
    customer = make_customer()
    invoice = make_invoice(customer)
    payment = pay_invoice(invoice, transaction_id="BT-DOWNLOAD-1")
    refund(payment, 1100)
    with rls.acting_as(READER):
        note = CreditNote.objects.get(invoice_id=invoice.id)
    client = _client(make_member(customer))
    receipt = client.get(reverse("portal:receipt-pdf", kwargs={"payment_id": payment.id}))
    assert "Reference BT-DOWNLOAD-1" in _assert_pdf(receipt, f"receipt-{invoice.number}-{str(payment.id)[:8]}.pdf")
    credit = client.get(reverse("portal:credit-note-pdf", kwargs={"credit_note_id": note.id}))
    assert note.number in _assert_pdf(credit, f"{note.number}.pdf")


def test_a_tampered_invoice_has_no_pdf(settings: Any) -> None:
    customer = make_customer()
    invoice = make_invoice(customer)
    settings.INVOICE_CHECKSUM_KEYS = FORGED_KEYS
    response = _client(make_member(customer)).get(reverse("portal:invoice-pdf", kwargs={"invoice_id": invoice.id}))
    assert response.status_code == 409
    assert response["Content-Type"].startswith("text/html")
    assert str(invoice.number) not in response.content.decode()
    with rls.acting_as(READER):
        assert InvoiceChecksumMismatch.objects.filter(invoice=invoice).count() == 1


def test_the_pay_link_pdf_needs_no_login() -> None:
    invoice = big_invoice(make_customer(name="Cradle Mountain Lodge"))
    token = pay_link_token(invoice=invoice)
    path = reverse("portal:hosted-invoice-pdf", kwargs={"token": token})
    assert f'href="{path}"' in Client().get(reverse("portal:hosted-invoice", kwargs={"token": token})).content.decode()
    response = Client().get(path)
    text = _assert_pdf(response, f"{invoice.number}.pdf")
    assert "Cradle Mountain Lodge" in text
    assert "Salamanca Place" not in text  # behind a pay link: the buyer named, not located
    assert response["X-Robots-Tag"] == "noindex, nofollow"


def test_a_tampered_pay_link_gets_no_pdf() -> None:
    invoice = make_invoice(make_customer())
    token = pay_link_token(invoice=invoice)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    response = Client().get(reverse("portal:hosted-invoice-pdf", kwargs={"token": forged}))
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    assert str(invoice.number) not in response.content.decode()


def test_a_tampered_invoice_has_no_pay_link_pdf(settings: Any) -> None:
    invoice = make_invoice(make_customer())
    token = pay_link_token(invoice=invoice)
    settings.INVOICE_CHECKSUM_KEYS = FORGED_KEYS
    response = Client().get(reverse("portal:hosted-invoice-pdf", kwargs={"token": token}))
    assert response.status_code == 409
    assert str(invoice.number) not in response.content.decode()
