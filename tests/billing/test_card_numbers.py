"""customer_create, customer_update and product_save refuse a card number in any text field,
whichever channel calls them (O2S, the admin, the portal to come); nothing is written."""

from __future__ import annotations

from typing import Any

import pytest

from audit.models import AuditEvent
from billing.models import Customer, Product, ProductPrice
from billing.services import customer_create, customer_update, product_save
from paymenter.card_numbers import FIELD_MESSAGE, CardNumberNotAllowedError
from paymenter.models import OutboxMessage
from paymenter.principals import SystemPrincipal
from tests.factories import make_customer

pytestmark = pytest.mark.usefixtures("db", "system_principal")

PRINCIPAL = SystemPrincipal(label="test:card-numbers")
PANS = (
    "4242424242424242",
    "4242 4242 4242 4242",
    "4242-4242-4242-4242",
    "5555 5555 5555 4444",
    "378282246310005",
    "6011111111111117",
)
NOT_A_PAN = "4242424242424241"
VALID: dict[str, Any] = {
    "external_id": "o2s-cards-1",
    "billing_country": "AU",
    "name": "Taroona Hosting Pty Ltd",
    "email": "accounts@taroona.example",
}


def _counts() -> tuple[int, int, int, int, int]:
    return (
        Customer.objects.count(),
        Product.objects.count(),
        ProductPrice.objects.count(),
        AuditEvent.objects.count(),
        OutboxMessage.objects.count(),
    )


@pytest.mark.parametrize("pan", PANS)
@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"external_id": "{pan}"}, "external_id"),
        ({"name": "Card {pan}"}, "name"),
        ({"email": "{pan}@taroona.example"}, "email"),
        ({"phone": "{pan}"}, "phone"),
        ({"tax_id": "{pan}"}, "tax_id"),
        ({"postal_address": {"line1": "1 Beach Road", "postcode": "{pan}"}}, "postal_address.postcode"),
    ],
)
def test_create_refuses_a_card_number_in_any_field_and_writes_nothing(
    pan: str, overrides: dict[str, Any], field: str
) -> None:
    values = {
        key: ({k: v.format(pan=pan) for k, v in value.items()} if isinstance(value, dict) else value.format(pan=pan))
        for key, value in overrides.items()
    }
    before = _counts()

    with pytest.raises(CardNumberNotAllowedError) as caught:
        customer_create(principal=PRINCIPAL, **{**VALID, **values})

    assert (caught.value.status_code, caught.value.code) == (400, "card_number_not_allowed")
    assert caught.value.fields == {field: [FIELD_MESSAGE]}
    assert _counts() == before


def test_create_refuses_before_any_other_check() -> None:
    before = _counts()

    with pytest.raises(CardNumberNotAllowedError) as caught:
        customer_create(principal=PRINCIPAL, **{**VALID, "billing_country": "ZZ", "name": "", "tax_id": PANS[1]})

    assert caught.value.fields == {"tax_id": [FIELD_MESSAGE]}
    assert _counts() == before


@pytest.mark.parametrize("pan", PANS)
def test_update_refuses_a_card_number_and_changes_nothing(pan: str) -> None:
    customer = make_customer()
    before = _counts()

    with pytest.raises(CardNumberNotAllowedError) as caught:
        customer_update(
            principal=PRINCIPAL,
            customer_id=customer.id,
            changes={"name": "New name", "postal_address": {"line2": f"card {pan}"}},
        )

    assert caught.value.fields == {"postal_address.line2": [FIELD_MESSAGE]}
    stored = Customer.objects.get(id=customer.id)
    assert (stored.name, stored.postal_address) == (customer.name, customer.postal_address)
    assert _counts() == before


@pytest.mark.parametrize("pan", PANS)
@pytest.mark.parametrize("field", ["code", "description"])
def test_product_save_refuses_a_card_number_and_writes_nothing(pan: str, field: str) -> None:
    values = {"code": "vps-small", "description": "VPS small", field: pan}
    before = _counts()

    with pytest.raises(CardNumberNotAllowedError) as caught:
        product_save(principal=PRINCIPAL, product=Product(**values), prices={"AUD": 1999})

    assert caught.value.fields == {field: [FIELD_MESSAGE]}
    assert _counts() == before


def test_a_number_that_fails_luhn_is_accepted() -> None:
    customer = customer_create(
        principal=PRINCIPAL, **{**VALID, "external_id": NOT_A_PAN, "postal_address": {"line1": NOT_A_PAN}}
    )
    product = product_save(
        principal=PRINCIPAL, product=Product(code=NOT_A_PAN, description=f"Order {NOT_A_PAN}"), prices={"AUD": 1}
    )

    assert (customer.external_id, customer.postal_address) == (NOT_A_PAN, {"line1": NOT_A_PAN})
    assert Product.objects.get(id=product.id).description == f"Order {NOT_A_PAN}"
