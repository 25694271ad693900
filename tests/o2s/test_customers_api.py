"""``/api/v1/customers/``: create, get, look up by O2S id, change contact details."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection

from audit.models import AuditEvent
from billing.models import Customer
from tests.factories import make_customer
from tests.o2s.api_helpers import error_code, make_api_client, side_effects

pytestmark = pytest.mark.usefixtures("db", "system_principal")


def _body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "external_id": f"o2s-{uuid.uuid4().hex[:10]}",
        "billing_country": "AU",
        "name": "Salamanca Hosting Pty Ltd",
        "email": "accounts@salamanca.example",
        "phone": "+61 3 6200 0000",
        "postal_address": {"line1": "1 Salamanca Place", "city": "Hobart", "postcode": "7000", "country": "AU"},
        "tax_id": "53 004 085 616",
    }
    body.update(overrides)
    return body


def test_create_stores_personal_data_encrypted_and_returns_it() -> None:
    api = make_api_client()
    body = _body()

    response = api.post("/api/v1/customers/", body)

    assert response.status_code == 201
    data = response.json()
    assert {k: data[k] for k in body} == body
    customer = Customer.objects.get(id=data["id"])
    assert (customer.name, customer.email, customer.tax_id) == (body["name"], body["email"], body["tax_id"])
    with connection.cursor() as cursor:
        cursor.execute("SELECT email::text, name::text FROM billing_customer WHERE id = %s", [customer.id])
        stored = cursor.fetchone()
    assert stored is not None
    assert "salamanca" not in " ".join(stored).lower()
    assert AuditEvent.objects.filter(object_id=data["id"], action="customer.created").count() == 1


def test_get_and_lookup_by_external_id() -> None:
    api = make_api_client()
    customer = make_customer(billing_country="NZ")

    by_id = api.get(f"/api/v1/customers/{customer.id}/")
    by_external = api.get("/api/v1/customers/", {"external_id": customer.external_id})

    assert by_id.status_code == by_external.status_code == 200
    assert by_id.json() == by_external.json()
    assert (by_id.json()["external_id"], by_id.json()["billing_country"]) == (customer.external_id, "NZ")


def test_missing_customer_is_a_json_404() -> None:
    api = make_api_client()

    by_id = api.get(f"/api/v1/customers/{uuid.uuid4()}/")
    by_external = api.get("/api/v1/customers/", {"external_id": "nobody"})
    not_a_uuid = api.get("/api/v1/customers/not-a-uuid/")

    assert (by_id.status_code, error_code(by_id)) == (404, "customer_not_found")
    assert (by_external.status_code, error_code(by_external)) == (404, "customer_not_found")
    assert (not_a_uuid.status_code, error_code(not_a_uuid)) == (404, "not_found")


def test_lookup_without_external_id_is_400() -> None:
    response = make_api_client().get("/api/v1/customers/")
    assert (response.status_code, error_code(response)) == (400, "validation_error")
    assert response.json()["error"]["fields"] == {"external_id": ["This field is required."]}


@pytest.mark.parametrize(
    ("overrides", "status", "code", "field"),
    [
        ({"is_vip": True}, 400, "unknown_field", "is_vip"),
        ({"id": str(uuid.uuid4())}, 400, "unknown_field", "id"),
        ({"postal_address": {"line1": "x", "planet": "Mars"}}, 400, "unknown_field", "postal_address.planet"),
        ({"name": 12345}, 400, "validation_error", "name"),
        ({"email": "not-an-email"}, 400, "validation_error", "email"),
        ({"billing_country": "Australia"}, 400, "validation_error", "billing_country"),
        ({"external_id": "x" * 65}, 400, "validation_error", "external_id"),
        ({"name": "bad\x00byte"}, 400, "validation_error", "name"),
    ],
)
def test_bad_create_bodies_are_refused_and_write_nothing(
    overrides: dict[str, Any], status: int, code: str, field: str
) -> None:
    api = make_api_client()
    before = side_effects()

    response = api.post("/api/v1/customers/", _body(**overrides))

    assert (response.status_code, error_code(response)) == (status, code)
    assert field in response.json()["error"]["fields"]
    assert side_effects() == before


def test_duplicate_external_id_is_409_and_writes_nothing() -> None:
    api = make_api_client()
    existing = make_customer()
    before = side_effects()

    response = api.post("/api/v1/customers/", _body(external_id=existing.external_id))

    assert (response.status_code, error_code(response)) == (409, "duplicate_customer")
    assert side_effects() == before


def test_malformed_json_and_wrong_content_type() -> None:
    api = make_api_client()
    before = side_effects()

    malformed = api.post_raw("/api/v1/customers/", b'{"external_id": ')
    form = api.post_raw("/api/v1/customers/", "external_id=x", content_type="application/x-www-form-urlencoded")
    not_an_object = api.post("/api/v1/customers/", ["a", "b"])

    assert (malformed.status_code, error_code(malformed)) == (400, "malformed_json")
    assert (form.status_code, error_code(form)) == (415, "unsupported_media_type")
    assert (not_an_object.status_code, error_code(not_an_object)) == (400, "validation_error")
    assert side_effects() == before


def test_patch_changes_contact_details_and_is_audited() -> None:
    api = make_api_client()
    customer = make_customer()

    response = api.patch(
        f"/api/v1/customers/{customer.id}/", {"email": "new@billing.example", "phone": None, "billing_country": "nz"}
    )

    assert response.status_code == 200
    assert (response.json()["email"], response.json()["phone"], response.json()["billing_country"]) == (
        "new@billing.example",
        None,
        "NZ",
    )
    customer.refresh_from_db()
    assert (customer.email, customer.phone, customer.billing_country) == ("new@billing.example", None, "NZ")
    event = AuditEvent.objects.filter(object_id=str(customer.id), action="customer.updated").get()
    assert event.payload["changed_fields"] == ["billing_country", "email", "phone"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"external_id": "o2s-other"}, "external_id"),
        ({"name": "New", "credit_limit": 5}, "credit_limit"),
    ],
)
def test_patch_refuses_unknown_fields_and_external_id_changes(body: dict[str, Any], field: str) -> None:
    api = make_api_client()
    customer = make_customer()
    before = side_effects()

    response = api.patch(f"/api/v1/customers/{customer.id}/", body)

    assert (response.status_code, error_code(response)) == (400, "unknown_field")
    assert field in response.json()["error"]["fields"]
    assert field in response.json()["error"]["message"]
    customer.refresh_from_db()
    assert customer.name.startswith("Customer ")
    assert side_effects() == before


def test_patch_of_a_missing_customer_is_404() -> None:
    response = make_api_client().patch(f"/api/v1/customers/{uuid.uuid4()}/", {"name": "X"})
    assert (response.status_code, error_code(response)) == (404, "customer_not_found")
