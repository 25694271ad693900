"""The PDFs say what an Australian tax invoice, a receipt and an adjustment note must say:
read back from the rendered PDF's text (pypdf), not from the HTML."""

from __future__ import annotations

import os
from pathlib import Path

import pypdfium2
import pytest
from django.conf import settings

from gateways.models import Payment
from invoices.models import CreditNote
from paymenter import rls
from paymenter.money import Money
from portal.documents import (
    DOCUMENTS_STATIC_DIR,
    DocumentResourceRefusedError,
    credit_note_pdf,
    invoice_pdf,
    local_static_fetcher,
    local_static_file,
    receipt_pdf,
)
from tests.documents.support import READER, big_invoice, pdf_text, refund, stored
from tests.factories import make_customer, make_invoice, pay_invoice

pytestmark = pytest.mark.django_db


def aud(minor: int) -> str:
    return Money(minor, "AUD").format()


def test_the_tax_invoice_pdf_shows_every_element_a_tax_invoice_of_1000_dollars_or_more_needs() -> None:
    customer = make_customer(name="Huon Valley Orchards Pty Ltd", tax_id="53 004 085 616")
    invoice = big_invoice(customer)
    assert invoice.total_minor >= 100000
    with rls.acting_as(READER):
        lines = list(invoice.lines.all())
        pdf = invoice_pdf(invoice, lines)
        text = pdf_text(pdf)
    if os.environ.get("SAVE_DOCS_SCREENSHOTS") == "1":  # docs/portal.md's picture of the PDF
        page = pypdfium2.PdfDocument(pdf)[0]
        page.render(scale=1.5).to_pil().save(Path(settings.BASE_DIR) / "docs" / "img" / "tax-invoice-pdf.png")

    assert "Tax invoice" in text
    assert settings.SELLER_NAME in text
    assert f"ABN {settings.SELLER_ABN}" in text
    assert str(invoice.number) in text
    assert invoice.issue_date is not None
    assert invoice.issue_date.strftime("%-d %B %Y") in text
    # the buyer's identity (required from A$1,000)
    assert "Huon Valley Orchards Pty Ltd" in text
    assert "53 004 085 616" in text
    for line in lines:
        assert line.description in text
        assert f"{aud(line.unit_amount_minor)}" in text
        assert f"{aud(line.total_minor)}" in text
    assert "2 AUD 450.00" in text  # quantity next to its unit price
    assert "GST 10%" in text
    free = next(line for line in lines if line.description == "Domain name transfer")
    assert free.tax_code == "GST_FREE"
    assert free.tax_minor == 0
    assert "Domain name transfer 1 AUD 15.00 GST-free AUD 0.00 AUD 15.00" in text
    assert invoice.tax_minor == 19000
    assert f"Total includes GST of {aud(19000)}" in text
    assert f"Subtotal (excl. GST) {aud(invoice.subtotal_minor)}" in text
    assert f"Total (incl. GST) {aud(invoice.total_minor)}" in text


def test_a_receipt_pdf_names_who_paid_what_how_for_which_invoice_and_what_is_still_due() -> None:
    customer = make_customer(name="Bruny Island Cheese Co")
    invoice = make_invoice(customer)  # AUD 31.90
    first = pay_invoice(invoice, 1000, transaction_id="BT-REF-0001")
    second = pay_invoice(invoice, invoice.total_minor - 1000, transaction_id="BT-REF-0002")
    with rls.acting_as(READER):
        first, second = Payment.objects.get(pk=first.pk), Payment.objects.get(pk=second.pk)
        first_text = pdf_text(receipt_pdf(first))
        second_text = pdf_text(receipt_pdf(second))

    assert "Receipt" in first_text
    assert "Bruny Island Cheese Co" in first_text
    assert settings.SELLER_NAME in first_text
    assert str(invoice.number) in first_text
    assert f"Amount received {aud(1000)}" in first_text
    assert "Method Bank transfer" in first_text
    assert "Reference BT-REF-0001" in first_text
    assert f"Amount due after this payment {aud(invoice.total_minor - 1000)}" in first_text
    # a later payment does not change an earlier receipt; the last one leaves nothing due
    assert f"Paid before this payment {aud(1000)}" in second_text
    assert f"Amount due after this payment {aud(0)}" in second_text
    assert "paid in full" in second_text


def test_a_credit_note_pdf_is_an_adjustment_note_reversing_the_lines_with_their_gst() -> None:
    invoice = make_invoice(make_customer())  # AUD 20.00 + 2 x 4.50, GST 2.90, total 31.90
    payment = pay_invoice(invoice)
    refund(payment, invoice.total_minor)
    with rls.acting_as(READER):
        note = CreditNote.objects.select_related("invoice").get(invoice_id=invoice.pk)
        text = pdf_text(credit_note_pdf(note))

    assert "Adjustment note (tax credit note)" in text
    assert note.number in text
    assert str(stored(invoice).number) in text
    assert f"ABN {settings.SELLER_ABN}" in text
    assert note.tax_minor == 290
    assert f"GST reversed -{aud(290)}" in text
    assert f"Total credited (incl. GST) -{aud(3190)}" in text
    assert "VPS small, 1 month" in text
    assert "Backup storage 50 GB" in text
    assert f"reduces the GST payable on tax invoice {invoice.number} by {aud(290)}" in text


def test_the_renderer_reads_only_files_of_the_documents_static_directory() -> None:
    fetcher = local_static_fetcher()
    stylesheet = (DOCUMENTS_STATIC_DIR / "print.css").resolve()
    response = fetcher.fetch(stylesheet.as_uri())
    assert b"@page" in response.read()
    refused = [
        "https://example.com/style.css",
        "http://169.254.169.254/latest/meta-data/",
        "ftp://example.com/x.css",
        "data:text/css,body{}",
        "file:///etc/passwd",
        "file://attacker.example/share/print.css",
        stylesheet.as_uri().replace("/documents/print.css", "/documents/../../settings.py"),
        (Path(settings.BASE_DIR) / "paymenter" / "settings.py").as_uri(),
    ]
    for url in refused:
        with pytest.raises(DocumentResourceRefusedError):
            fetcher.fetch(url)
        with pytest.raises(DocumentResourceRefusedError):
            local_static_file(url)


def test_an_external_url_in_a_line_description_is_text_not_a_fetch() -> None:
    invoice = make_invoice(make_customer(), lines=[('<img src="https://example.com/x.png"> Setup', 1, 5000)])
    with rls.acting_as(READER):
        text = pdf_text(invoice_pdf(invoice))
    assert '<img src="https://example.com/' in text  # shown as text (escaped), never fetched
    assert 'x.png"> Setup' in text
