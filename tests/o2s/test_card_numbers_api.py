"""No card number comes in through the O2S API: request bodies, query parameters, the
``Idempotency-Key`` header (400 ``card_number_not_allowed``, nothing written) and the
``X-Request-ID`` header (replaced by a fresh id). A 16-digit number that fails Luhn is
an ordinary reference and is accepted."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from audit.models import AuditEvent
from billing.models import Customer
from invoices.models import Invoice, InvoiceStatus
from o2s.models import IdempotencyRecord
from paymenter.card_numbers import FIELD_MESSAGE
from tests.factories import make_customer, make_invoice
from tests.o2s.api_helpers import O2SClient, make_api_client, make_product, side_effects

pytestmark = pytest.mark.usefixtures("db", "system_principal")

# the standard test numbers: Visa (plain, spaced, dashed), Mastercard, Amex, Discover
PANS = (
    "4242424242424242",
    "4242 4242 4242 4242",
    "4242-4242-4242-4242",
    "5555 5555 5555 4444",
    "378282246310005",
    "6011111111111117",
)
NOT_A_PAN = "4242424242424241"  # 16 digits, fails Luhn: an order number, say
MESSAGE = "Card numbers must not be sent to us; remove it and pay on the payment page."


@pytest.fixture
def api() -> O2SClient:
    return make_api_client(custom_lines=True)


def _refused(response: Any, *fields: str) -> None:
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "code": "card_number_not_allowed",
            "message": MESSAGE,
            "fields": {field: [FIELD_MESSAGE] for field in fields},
        }
    }


def _customer_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "external_id": f"o2s-{uuid.uuid4().hex[:10]}",
        "billing_country": "AU",
        "name": "Sandy Bay Hosting Pty Ltd",
        "email": f"accounts-{uuid.uuid4().hex[:6]}@sandybay.example",
    }
    body.update(overrides)
    return body


def _invoice_body(customer: Customer, description: str) -> dict[str, Any]:
    return {
        "customer": str(customer.id),
        "currency": "AUD",
        "lines": [
            {"product_code": "vps-small", "quantity": 1},
            {"description": description, "quantity": 1, "unit_amount_minor": 5000},
        ],
    }


# --- request bodies ------------------------------------------------------------------------


@pytest.mark.parametrize("pan", PANS)
def test_a_card_number_in_an_invoice_line_is_refused_and_writes_nothing(api: O2SClient, pan: str) -> None:
    make_product("vps-small")
    customer = make_customer()
    before = side_effects()

    created = api.post(
        "/api/v1/invoices/", _invoice_body(customer, f"Card {pan} setup"), HTTP_IDEMPOTENCY_KEY="order-1"
    )
    previewed = api.post("/api/v1/invoices/preview/", _invoice_body(customer, pan), HTTP_IDEMPOTENCY_KEY="order-2")

    _refused(created, "lines.1.description")
    _refused(previewed, "lines.1.description")
    assert side_effects() == before
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.parametrize("pan", PANS)
def test_a_card_number_in_any_customer_field_is_refused_and_writes_nothing(api: O2SClient, pan: str) -> None:
    body = _customer_body(
        external_id=pan,
        name=f"Paid with {pan}",
        postal_address={"line1": "1 Sandy Bay Road", "line2": pan, "country": "AU"},
        tax_id=pan,
        phone=pan,
    )
    before = side_effects()

    response = api.post("/api/v1/customers/", body, HTTP_IDEMPOTENCY_KEY=f"cust-{uuid.uuid4().hex}")

    _refused(response, "external_id", "name", "phone", "postal_address.line2", "tax_id")
    assert side_effects() == before
    assert not Customer.objects.filter(external_id=pan).exists()


def test_the_card_number_refusal_comes_first_whatever_else_is_wrong(api: O2SClient) -> None:
    before = side_effects()

    unknown_field = api.post("/api/v1/customers/", _customer_body(card="4242 4242 4242 4242"))
    bad_email = api.post("/api/v1/customers/", _customer_body(email="4242424242424242@cards.example", name=5))

    _refused(unknown_field, "card")
    _refused(bad_email, "email")
    assert side_effects() == before


def test_a_card_number_in_a_patch_is_refused_and_changes_nothing(api: O2SClient) -> None:
    customer = make_customer()
    before = side_effects()

    response = api.patch(
        f"/api/v1/customers/{customer.id}/",
        {"name": "4242 4242 4242 4242", "postal_address": {"city": "5555-5555-5555-4444"}},
    )

    _refused(response, "name", "postal_address.city")
    stored = Customer.objects.get(id=customer.id)
    assert (stored.name, stored.postal_address) == (customer.name, customer.postal_address)
    assert side_effects() == before


def test_a_card_number_in_a_void_reason_is_refused_and_the_invoice_stays_open(api: O2SClient) -> None:
    invoice = make_invoice(make_customer())
    before = side_effects()

    response = api.post(
        f"/api/v1/invoices/{invoice.id}/void/", {"reason": "customer sent 378282246310005"}, HTTP_IDEMPOTENCY_KEY="v-1"
    )

    _refused(response, "reason")
    assert Invoice.objects.get(id=invoice.id).status == InvoiceStatus.OPEN
    assert side_effects() == before


# --- query parameters ----------------------------------------------------------------------


@pytest.mark.parametrize("pan", PANS)
def test_a_card_number_in_a_query_parameter_is_refused(api: O2SClient, pan: str) -> None:
    lookup = api.get("/api/v1/customers/", {"external_id": pan})
    listing = api.get("/api/v1/invoices/", {"customer_external_id": pan, "status": "open"})
    unknown = api.get("/api/v1/invoices/", {"note": pan})

    _refused(lookup, "external_id")
    _refused(listing, "customer_external_id")
    _refused(unknown, "note")


# --- headers ---------------------------------------------------------------------------


@pytest.mark.parametrize("pan", PANS)
def test_an_idempotency_key_holding_a_card_number_is_refused_and_writes_nothing(api: O2SClient, pan: str) -> None:
    before = side_effects()

    response = api.post("/api/v1/customers/", _customer_body(), HTTP_IDEMPOTENCY_KEY=f"order {pan}")

    _refused(response, "Idempotency-Key")
    assert side_effects() == before
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.parametrize("pan", ["4242424242424242", "4242-4242-4242-4242", "378282246310005", "6011111111111117"])
def test_a_request_id_holding_a_card_number_is_replaced_by_a_fresh_one(api: O2SClient, pan: str) -> None:
    body = _customer_body()

    response = api.post("/api/v1/customers/", body, HTTP_X_REQUEST_ID=pan)

    assert response.status_code == 201
    request_id = response["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    event = AuditEvent.objects.get(action="customer.created", object_id=response.json()["id"])
    assert event.request_id == request_id


# --- not a card number ---------------------------------------------------------------------


def test_a_sixteen_digit_number_that_fails_luhn_is_accepted_everywhere(api: O2SClient) -> None:
    make_product("vps-small")
    body = _customer_body(external_id=NOT_A_PAN, name=f"Order {NOT_A_PAN}")

    created = api.post("/api/v1/customers/", body, HTTP_IDEMPOTENCY_KEY=f"k-{NOT_A_PAN}", HTTP_X_REQUEST_ID=NOT_A_PAN)
    customer = Customer.objects.get(id=created.json()["id"])
    looked_up = api.get("/api/v1/customers/", {"external_id": NOT_A_PAN})
    invoice = api.post("/api/v1/invoices/", _invoice_body(customer, f"Order {NOT_A_PAN}"))

    assert (created.status_code, created["X-Request-ID"]) == (201, NOT_A_PAN)
    assert (customer.external_id, customer.name) == (NOT_A_PAN, f"Order {NOT_A_PAN}")
    assert (looked_up.status_code, looked_up.json()["id"]) == (200, str(customer.id))
    assert invoice.status_code == 201
    assert invoice.json()["lines"][1]["description"] == f"Order {NOT_A_PAN}"
    assert IdempotencyRecord.objects.get().key == f"k-{NOT_A_PAN}"
    assert AuditEvent.objects.get(action="customer.created", object_id=str(customer.id)).request_id == NOT_A_PAN
