"""``manage.py demo_pay_link``: the pay link of an open demo invoice, for ``make run`` to print.

Prints one line, ``<invoice number> <amount due> <absolute pay URL>``: the oldest open demo
invoice with something due (the Australian customer's first), its link signed now and built on
``PUBLIC_BASE_URL`` (``invoices.pay_links.pay_link_url``). A link is a bearer credential for
that one demo invoice; it expires after ``PAY_LINK_MAX_AGE_DAYS``.

When every demo invoice has been paid (a newcomer tried the card flow on both), it issues one
more invoice to the first demo customer, with the lines of that customer's open demo invoice
in ``load_demo_data``, so that there is always a demo invoice to pay. Needs the demo data
(``manage.py load_demo_data``) and changes nothing else.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db.models import F

from billing.models import Customer
from invoices.models import Invoice, InvoiceStatus
from invoices.pay_links import pay_link_url
from invoices.pricing import InvoiceLineInput
from invoices.services import invoice_create
from operations.management.commands.load_demo_data import DEMO_CUSTOMERS
from paymenter import rls
from paymenter.money import Money
from paymenter.principals import SystemPrincipal

PRINCIPAL = SystemPrincipal(label="command:demo_pay_link")


def _open_demo_invoice() -> Invoice | None:
    external_ids = [demo.external_id for demo in DEMO_CUSTOMERS]  # in that order: AUD first
    candidates = (
        Invoice.objects.select_related("customer")
        .filter(
            customer__external_id__in=external_ids,
            status=InvoiceStatus.OPEN,
            total_minor__gt=F("amount_paid_minor"),
        )
        .order_by("created_at")
    )
    by_customer = sorted(candidates, key=lambda invoice: external_ids.index(invoice.customer.external_id))
    return by_customer[0] if by_customer else None


def _issue_another() -> Invoice:
    demo = DEMO_CUSTOMERS[0]
    customer = Customer.objects.filter(external_id=demo.external_id).first()
    if customer is None:
        raise CommandError("no demo data: run manage.py load_demo_data first")
    lines = next(invoice.lines for invoice in demo.invoices if invoice.state == "open")
    return invoice_create(
        principal=PRINCIPAL,
        customer=customer,
        currency=demo.currency,
        lines=[InvoiceLineInput(description=d, quantity=q, unit_amount_minor=u) for d, q, u in lines],
        issue=True,
    )


class Command(BaseCommand):
    help = (
        "Print '<number> <amount due> <pay URL>' for an open demo invoice (issuing one more "
        "demo invoice when all are paid). Used by make run."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        with rls.acting_as(PRINCIPAL):
            invoice = _open_demo_invoice() or _issue_another()
            url = pay_link_url(invoice=invoice)
        due = Money(invoice.amount_due_minor, invoice.currency).format()
        self.stdout.write(f"{invoice.number} {due} {url}")
