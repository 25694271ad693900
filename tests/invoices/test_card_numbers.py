"""Invoice lines: a description holding a card number is refused by the pricing every
create, preview and issue goes through; nothing is written."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from invoices.models import Invoice, InvoiceLine
from invoices.pricing import InvoiceLineInput
from invoices.services import invoice_create, invoice_preview
from paymenter.card_numbers import FIELD_MESSAGE, CardNumberNotAllowedError
from paymenter.models import OutboxMessage
from paymenter.principals import SystemPrincipal
from tests.factories import make_customer

pytestmark = pytest.mark.usefixtures("db", "system_principal")

PANS = (
    "4242424242424242",
    "4242 4242 4242 4242",
    "4242-4242-4242-4242",
    "5555 5555 5555 4444",
    "378282246310005",
    "6011111111111117",
)


def _counts() -> tuple[int, int, int, int]:
    return (
        Invoice.objects.count(),
        InvoiceLine.objects.count(),
        AuditEvent.objects.count(),
        OutboxMessage.objects.count(),
    )


def _lines(description: str) -> list[InvoiceLineInput]:
    return [
        InvoiceLineInput(description="VPS small, 1 month", quantity=1, unit_amount_minor=2000),
        InvoiceLineInput(description=description, quantity=1, unit_amount_minor=500),
    ]


@pytest.mark.parametrize("pan", PANS)
@pytest.mark.parametrize("issue", [True, False])
def test_create_refuses_a_card_number_in_a_line_and_writes_nothing(
    system_principal: SystemPrincipal, pan: str, issue: bool
) -> None:
    customer = make_customer()
    before = _counts()

    with pytest.raises(CardNumberNotAllowedError) as caught:
        invoice_create(principal=system_principal, customer=customer, lines=_lines(f"paid by {pan}"), issue=issue)

    assert (caught.value.status_code, caught.value.code) == (400, "card_number_not_allowed")
    assert caught.value.fields == {"lines.1.description": [FIELD_MESSAGE]}
    assert _counts() == before


@pytest.mark.parametrize("pan", PANS)
def test_preview_refuses_it_too(system_principal: SystemPrincipal, pan: str) -> None:
    customer = make_customer()

    with pytest.raises(CardNumberNotAllowedError) as caught:
        invoice_preview(principal=system_principal, customer=customer, lines=_lines(pan), currency="AUD")

    assert caught.value.fields == {"lines.1.description": [FIELD_MESSAGE]}


def test_a_number_that_fails_luhn_is_an_ordinary_reference(system_principal: SystemPrincipal) -> None:
    customer = make_customer()

    invoice = invoice_create(
        principal=system_principal, customer=customer, lines=_lines("Order 4242424242424241"), issue=True
    )

    assert [line.description for line in invoice.lines.order_by("position")] == [
        "VPS small, 1 month",
        "Order 4242424242424241",
    ]
