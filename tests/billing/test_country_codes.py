"""customer_create / customer_update: every country that enters (billing country, postal
address country) must be a real ISO 3166-1 alpha-2 code, whichever channel calls."""

from __future__ import annotations

from typing import Any

import pytest

from audit.models import AuditEvent
from billing.errors import InvalidCustomerError
from billing.models import Customer
from billing.services import customer_create, customer_update
from paymenter.principals import SystemPrincipal
from tests.factories import make_customer

pytestmark = pytest.mark.usefixtures("db", "system_principal")

PRINCIPAL = SystemPrincipal(label="test:countries")
MESSAGE = "an ISO 3166-1 alpha-2 country code such as AU"
VALID: dict[str, Any] = {
    "external_id": "o2s-country-1",
    "billing_country": "AU",
    "name": "Sandy Bay Hosting Pty Ltd",
    "email": "accounts@sandybay.example",
}


def _counts() -> tuple[int, int]:
    return Customer.objects.count(), AuditEvent.objects.count()


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        ({"billing_country": "ZZ"}, {"billing_country": [MESSAGE]}),
        ({"billing_country": "zz"}, {"billing_country": [MESSAGE]}),
        ({"billing_country": "EU"}, {"billing_country": [MESSAGE]}),
        ({"postal_address": {"line1": "1 Sandy Bay Road", "country": "ZZ"}}, {"postal_address.country": [MESSAGE]}),
        ({"postal_address": {"country": " zz "}}, {"postal_address.country": [MESSAGE]}),
    ],
)
def test_create_with_an_unknown_country_is_refused_and_writes_nothing(
    overrides: dict[str, Any], fields: dict[str, list[str]]
) -> None:
    before = _counts()

    with pytest.raises(InvalidCustomerError) as caught:
        customer_create(principal=PRINCIPAL, **{**VALID, **overrides})

    assert (caught.value.code, caught.value.fields) == ("invalid_customer", fields)
    assert _counts() == before


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"billing_country": "ZZ"}, {"billing_country": [MESSAGE]}),
        ({"postal_address": {"country": "ZZ"}}, {"postal_address.country": [MESSAGE]}),
    ],
)
def test_update_to_an_unknown_country_is_refused_and_changes_nothing(
    changes: dict[str, Any], fields: dict[str, list[str]]
) -> None:
    customer = make_customer(billing_country="AU")
    before = _counts()

    with pytest.raises(InvalidCustomerError) as caught:
        customer_update(principal=PRINCIPAL, customer_id=customer.id, changes=changes)

    assert (caught.value.code, caught.value.fields) == ("invalid_customer", fields)
    stored = Customer.objects.get(id=customer.id)
    assert (stored.billing_country, stored.postal_address) == ("AU", customer.postal_address)
    assert _counts() == before


def test_lower_case_codes_are_accepted_and_stored_upper_case() -> None:
    customer = customer_create(
        principal=PRINCIPAL, **{**VALID, "billing_country": "nz", "postal_address": {"country": " nz "}}
    )
    updated = customer_update(
        principal=PRINCIPAL, customer_id=customer.id, changes={"billing_country": "us", "postal_address": {}}
    )

    assert (customer.billing_country, customer.postal_address) == ("NZ", {"country": "NZ"})
    assert (updated.billing_country, updated.postal_address) == ("US", {})
    assert Customer.objects.get(id=customer.id).billing_country == "US"


def test_a_blank_postal_country_is_not_given() -> None:
    customer = customer_create(principal=PRINCIPAL, **{**VALID, "postal_address": {"line1": "1 Road", "country": ""}})

    assert customer.postal_address == {"line1": "1 Road", "country": ""}
