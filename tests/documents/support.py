"""Helpers of the document tests: invoices with every element a tax invoice must show, and
the text of a PDF as one whitespace-normalised string (pypdf)."""

from __future__ import annotations

import io
import uuid

from django.contrib.auth.models import Group, User
from pypdf import PdfReader

from billing.models import Customer, TaxTreatment
from gateways.models import Payment, Refund
from gateways.services.refunds import refund_request
from invoices.models import Invoice
from invoices.pricing import InvoiceLineInput
from invoices.services import invoice_create
from paymenter import rls
from paymenter.money import Money
from paymenter.principals import StaffPrincipal, SystemPrincipal
from tests.factories import FACTORY_PRINCIPAL

READER = SystemPrincipal(label="test:documents")


def pdf_text(pdf: bytes) -> str:
    assert pdf.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(pdf))
    return " ".join(" ".join(page.extract_text() or "" for page in reader.pages).split())


def big_invoice(customer: Customer) -> Invoice:
    """An issued tax invoice of more than A$1,000 with a taxable and a GST-free line:
    AUD 1,000.00 + 2 x 450.00 at 10% GST (GST 190.00) and a GST-free 15.00."""
    lines = [
        InvoiceLineInput(description="Dedicated server DS-4, 1 month", quantity=1, unit_amount_minor=100000),
        InvoiceLineInput(description="Managed backup 1 TB", quantity=2, unit_amount_minor=45000),
        InvoiceLineInput(
            description="Domain name transfer",
            quantity=1,
            unit_amount_minor=1500,
            tax_treatment=TaxTreatment.GST_FREE,
        ),
    ]
    return invoice_create(principal=FACTORY_PRINCIPAL, customer=customer, lines=lines, currency="AUD", issue=True)


def stored(invoice: Invoice) -> Invoice:
    with rls.acting_as(READER):
        return Invoice.objects.get(pk=invoice.pk)


def refund(payment: Payment, minor: int) -> Refund:
    """A staff refund (billing role) of ``minor`` of a bank-transfer payment: a credit note."""
    user = User.objects.create_user(username=f"billing-{uuid.uuid4().hex[:8]}", is_staff=True)
    user.groups.add(Group.objects.get(name="billing"))
    return refund_request(
        principal=StaffPrincipal(user_id=int(user.pk), username=user.username),
        payment_id=payment.pk,
        amount=Money(minor, "AUD"),
        reason="customer asked",
        user_id=user.pk,
    )
