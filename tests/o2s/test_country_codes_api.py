"""O2S customers: a country must be a real ISO 3166-1 alpha-2 code (it decides GST), on
create, on PATCH and in the postal address; a refusal writes nothing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from billing.models import Customer
from tests.factories import make_customer
from tests.o2s.api_helpers import make_api_client, side_effects

pytestmark = pytest.mark.usefixtures("db", "system_principal")

MESSAGE = "an ISO 3166-1 alpha-2 country code such as AU"


def _body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "external_id": f"o2s-{uuid.uuid4().hex[:10]}",
        "billing_country": "AU",
        "name": "Battery Point Hosting Pty Ltd",
        "email": f"accounts-{uuid.uuid4().hex[:6]}@batterypoint.example",
        "postal_address": {"line1": "7 Kelly Street", "city": "Hobart", "postcode": "7004", "country": "AU"},
    }
    body.update(overrides)
    return body


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"billing_country": "ZZ"}, "billing_country"),
        ({"billing_country": "zz"}, "billing_country"),
        ({"billing_country": "UK"}, "billing_country"),
        ({"postal_address": {"line1": "7 Kelly Street", "country": "ZZ"}}, "postal_address.country"),
        ({"postal_address": {"line1": "7 Kelly Street", "country": "Australia"}}, "postal_address.country"),
    ],
)
def test_create_with_an_unknown_country_is_400_and_writes_nothing(overrides: dict[str, Any], field: str) -> None:
    api = make_api_client()
    body = _body(**overrides)
    before = side_effects()

    response = api.post("/api/v1/customers/", body, HTTP_IDEMPOTENCY_KEY=f"cust-{uuid.uuid4().hex}")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert response.json()["error"]["fields"] == {field: [MESSAGE]}
    assert not Customer.objects.filter(external_id=body["external_id"]).exists()
    assert side_effects() == before


@pytest.mark.parametrize(
    "changes",
    [
        {"billing_country": "ZZ"},
        {"billing_country": "XK"},
        {"postal_address": {"line1": "7 Kelly Street", "country": "ZZ"}},
    ],
)
def test_patch_to_an_unknown_country_is_400_and_changes_nothing(changes: dict[str, Any]) -> None:
    api = make_api_client()
    customer = make_customer(billing_country="AU")
    before = side_effects()

    response = api.patch(f"/api/v1/customers/{customer.id}/", changes)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    field = "billing_country" if "billing_country" in changes else "postal_address.country"
    assert response.json()["error"]["fields"] == {field: [MESSAGE]}
    stored = Customer.objects.get(id=customer.id)
    assert (stored.billing_country, stored.postal_address) == ("AU", customer.postal_address)
    assert side_effects() == before


def test_lower_case_codes_are_accepted_and_stored_upper_case() -> None:
    api = make_api_client()
    body = _body(billing_country="nz", postal_address={"line1": "1 Queen Street", "country": "nz"})

    created = api.post("/api/v1/customers/", body)
    patched = api.patch(
        f"/api/v1/customers/{created.json()['id']}/",
        {"billing_country": "gb", "postal_address": {"line1": "10 Downing Street", "country": "gb"}},
    )

    assert created.status_code == 201
    assert (created.json()["billing_country"], created.json()["postal_address"]["country"]) == ("NZ", "NZ")
    assert patched.status_code == 200
    assert (patched.json()["billing_country"], patched.json()["postal_address"]["country"]) == ("GB", "GB")
    stored = Customer.objects.get(id=created.json()["id"])
    assert (stored.billing_country, stored.postal_address) == ("GB", {"line1": "10 Downing Street", "country": "GB"})


def test_a_blank_postal_country_still_means_not_given() -> None:
    api = make_api_client()

    response = api.post("/api/v1/customers/", _body(postal_address={"line1": "7 Kelly Street", "country": ""}))

    assert response.status_code == 201
    assert response.json()["postal_address"] == {"line1": "7 Kelly Street", "country": ""}
