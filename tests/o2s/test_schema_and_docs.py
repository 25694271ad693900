"""``/api/v1/schema/`` (O2S key or staff) and ``/api/v1/docs/`` (staff only, offline assets)."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import UserFactory
from tests.o2s.api_helpers import error_code, make_api_client

pytestmark = pytest.mark.usefixtures("db", "system_principal")


def test_schema_is_served_to_an_api_key_and_describes_auth_and_errors() -> None:
    response = make_api_client().get("/api/v1/schema/")

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert schema["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    assert set(schema["paths"]) == {
        "/api/v1/customers/",
        "/api/v1/customers/{customer_id}/",
        "/api/v1/products/",
        "/api/v1/products/{code}/",
        "/api/v1/invoices/",
        "/api/v1/invoices/preview/",
        "/api/v1/invoices/{invoice_id}/",
        "/api/v1/invoices/{invoice_id}/void/",
    }
    create = schema["paths"]["/api/v1/invoices/"]["post"]
    assert {"400", "401", "403", "413", "415", "422", "429"} <= set(create["responses"])
    assert create["responses"]["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert "Idempotency-Key" in [parameter["name"] for parameter in create["parameters"]]


def test_schema_refuses_anonymous_callers() -> None:
    response = Client().get("/api/v1/schema/", REMOTE_ADDR="127.0.0.1")
    assert (response.status_code, error_code(response)) == (401, "unauthenticated")


def test_docs_page_is_for_staff_only_and_uses_bundled_assets() -> None:
    anonymous = Client().get("/api/v1/docs/")
    member = Client()
    member.force_login(UserFactory.create(is_staff=False))
    staff = Client()
    staff.force_login(UserFactory.create(is_staff=True))

    member_page = member.get("/api/v1/docs/")
    page = staff.get("/api/v1/docs/")
    schema = staff.get("/api/v1/schema/")

    assert anonymous.status_code == member_page.status_code == 302
    assert anonymous["Location"].startswith("/admin/login/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "drf_spectacular_sidecar/swagger-ui-dist" in html
    assert "cdn." not in html
    assert schema.status_code == 200
