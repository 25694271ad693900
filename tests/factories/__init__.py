"""Typed factories. Customers and invoices are built through the services so that
encryption, blind indexes, pricing, checksums and audit records are the real ones."""

from __future__ import annotations

import itertools
from typing import Any

import factory
from django.contrib.auth.models import AbstractUser, User

from billing.models import Customer
from billing.services import customer_create, customer_grant_access
from invoices.models import Invoice
from invoices.pricing import InvoiceLineInput
from invoices.services import invoice_create
from paymenter import rls
from paymenter.principals import SystemPrincipal
from tests.factories.payments import pay_invoice, start_card_payment

FACTORY_PRINCIPAL = SystemPrincipal(label="test:factory")
_counter = itertools.count(1)


def make_customer(**overrides: Any) -> Customer:
    n = next(_counter)
    fields: dict[str, Any] = {
        "external_id": f"o2s-{n}-{factory.Faker('uuid4').evaluate(None, None, {'locale': None})[:8]}",
        "billing_country": "AU",
        "name": f"Customer {n} Pty Ltd",
        "email": f"billing{n}-{next(_counter)}@customer{n}.example",
        "phone": "+61 3 6200 0000",
        "postal_address": {"line1": f"{n} Salamanca Place", "city": "Hobart", "postcode": "7000", "country": "AU"},
        "tax_id": "53 004 085 616",
    }
    fields.update(overrides)
    principal = fields.pop("principal", FACTORY_PRINCIPAL)
    return customer_create(principal=principal, **fields)


def make_invoice(
    customer: Customer,
    *,
    lines: list[tuple[str, int, int]] | None = None,
    currency: str = "AUD",
    issue: bool = True,
    principal: Any = FACTORY_PRINCIPAL,
) -> Invoice:
    line_inputs = [
        InvoiceLineInput(description=d, quantity=q, unit_amount_minor=u)
        for d, q, u in (lines or [("VPS small, 1 month", 1, 2000), ("Backup storage 50 GB", 2, 450)])
    ]
    return invoice_create(principal=principal, customer=customer, lines=line_inputs, currency=currency, issue=issue)


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.test")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery staple")

    @factory.post_generation
    def save_password(obj: AbstractUser, create: bool, extracted: Any, **kwargs: Any) -> None:  # noqa: N805
        if create:
            obj.save()


def make_member(customer: Customer, **user_fields: Any) -> User:
    user = UserFactory.create(**user_fields)
    customer_grant_access(principal=FACTORY_PRINCIPAL, customer_id=customer.id, user=user)
    return user


def make_paid_invoice(customer: Customer, **invoice_fields: Any) -> Invoice:
    """An issued invoice paid in full through the ledger (one bank transfer of its total)."""
    invoice = make_invoice(customer, **invoice_fields)
    pay_invoice(invoice)
    with rls.acting_as(FACTORY_PRINCIPAL):
        return Invoice.objects.get(id=invoice.id)


__all__ = [
    "FACTORY_PRINCIPAL",
    "UserFactory",
    "make_customer",
    "make_invoice",
    "make_member",
    "make_paid_invoice",
    "pay_invoice",
    "start_card_payment",
]
