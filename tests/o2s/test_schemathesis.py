"""Schemathesis against the live app: every operation of ``/api/v1/schema/``, with a valid key.

The app runs in a real WSGI server (``wsgiref``, 127.0.0.1, a free port) in a thread of this
process, as the restricted database role, on committed data (the app role cannot TRUNCATE,
so pytest-django's ``live_server`` is not an option). The schema is fetched from the server
itself. For each operation Schemathesis generates valid (positive) and invalid (negative)
requests; every response must be no 5xx, a documented status code, and match the
documented schema. Then one real success per operation is checked against the schema,
since random input rarely names an existing customer or product.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from billing.models import Product, ProductPrice
from invoices.services import invoice_void
from o2s.services import api_key_create
from paymenter import rls
from tests.factories import make_customer, make_invoice, pay_invoice
from tests.o2s.api_helpers import PRINCIPAL

pytestmark = pytest.mark.committed

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]
EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 8}


@pytest.fixture
def o2s(committed_db: None) -> dict[str, Any]:
    """A key allowed custom lines (so both line kinds succeed), a product, a customer."""
    suffix = uuid.uuid4().hex[:8]
    with rls.acting_as(PRINCIPAL):
        _, raw = api_key_create(
            principal=PRINCIPAL,
            name=f"schemathesis {suffix}",
            allowed_networks=["127.0.0.1/32"],
            can_invoice_custom_lines=True,
            rate_limit_per_minute=1_000_000,
        )
        product = Product.objects.create(code=f"st-{suffix}", description="Schemathesis VPS")
        ProductPrice.objects.create(product=product, currency="AUD", unit_amount_minor=1999)
        customer = make_customer(billing_country="AU")
    return {"headers": {"Authorization": f"Bearer {raw}"}, "product": product.code, "customer": customer}


def _fuzz(operation: Any, mode: GenerationMode, base_url: str, headers: dict[str, str]) -> None:
    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Case[Any]) -> None:
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        case.validate_response(response, checks=CHECKS, headers=headers)

    run()


def test_every_operation_conforms_to_the_schema(live_url: str, o2s: dict[str, Any]) -> None:
    headers = o2s["headers"]
    schema = schemathesis.openapi.from_url(f"{live_url}/api/v1/schema/", headers=headers)
    operations: list[Any] = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr] # Err raises
    assert len(operations) == 11

    failures: list[str] = []
    for operation in operations:
        for mode in EXAMPLES:
            try:
                _fuzz(operation, mode, live_url, headers)
            except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
    assert failures == []


def test_successful_responses_conform_to_the_schema(live_url: str, o2s: dict[str, Any]) -> None:
    headers = o2s["headers"]
    schema = schemathesis.openapi.from_url(f"{live_url}/api/v1/schema/", headers=headers)
    customer = o2s["customer"]

    def call(method: str, path: str, expected: int, **parts: Any) -> Any:
        case = schema[f"/api/v1{path}"][method].Case(**parts)
        response = case.call(base_url=live_url, headers=headers, timeout=30)
        assert response.status_code == expected, response.text
        case.validate_response(response, checks=CHECKS, headers=headers)
        return response.json()

    lines = [
        {"product_code": o2s["product"], "quantity": 2, "period_start": "2026-11-01", "period_end": "2026-11-30"},
        {"description": "Setup", "quantity": 1, "unit_amount_minor": 500},
    ]
    body = {"customer": str(customer.id), "currency": "AUD", "lines": lines}
    invoice = call("POST", "/invoices/", 201, body=body)
    call("POST", "/invoices/preview/", 200, body=body)
    call("GET", "/invoices/{invoice_id}/", 200, path_parameters={"invoice_id": invoice["id"]})
    call("GET", "/invoices/", 200, query={"customer": str(customer.id), "page_size": 1})
    call("POST", "/invoices/{invoice_id}/void/", 200, path_parameters={"invoice_id": invoice["id"]}, body={})
    call("GET", "/customers/{customer_id}/", 200, path_parameters={"customer_id": str(customer.id)})
    call("GET", "/customers/", 200, query={"external_id": customer.external_id})
    call(
        "PATCH",
        "/customers/{customer_id}/",
        200,
        path_parameters={"customer_id": str(customer.id)},
        body={"phone": None},
    )
    suffix = uuid.uuid4().hex[:10]
    call(
        "POST",
        "/customers/",
        201,
        body={"external_id": f"st-{suffix}", "billing_country": "US", "name": "ST", "email": f"st-{suffix}@st.example"},
    )
    call("GET", "/products/", 200)
    call("GET", "/products/{code}/", 200, path_parameters={"code": o2s["product"]})


@pytest.mark.parametrize("levels", [1_000, 100_000])
def test_deeply_nested_json_is_a_documented_400_on_every_post(live_url: str, o2s: dict[str, Any], levels: int) -> None:
    """The explicit hostile case random generation never reaches: nesting past the parser's
    limit answers the documented 400 (``malformed_json``, the error schema), never a 5xx."""
    headers = {**o2s["headers"], "Content-Type": "application/json"}
    schema = schemathesis.openapi.from_url(f"{live_url}/api/v1/schema/", headers=o2s["headers"])
    invoice_id = str(uuid.uuid4())  # the body is refused before the id is looked up
    deep = b'{"lines": ' + b"[" * levels + b"]" * levels + b"}"

    for path, parameters in (
        ("/customers/", {}),
        ("/invoices/", {}),
        ("/invoices/preview/", {}),
        ("/invoices/{invoice_id}/void/", {"invoice_id": invoice_id}),
    ):
        case = schema[f"/api/v1{path}"]["POST"].Case(path_parameters=parameters)
        response = case.call(base_url=live_url, headers=headers, data=deep, timeout=30)

        assert (response.status_code, response.json()["error"]["code"]) == (400, "malformed_json"), path
        case.validate_response(response, checks=CHECKS, headers=headers)


def test_an_invoice_in_every_state_answers_documented_statuses_to_every_operation(
    live_url: str, o2s: dict[str, Any]
) -> None:
    """Invoices in every state, as the demo data of ``make run`` has them (draft, open, paid,
    void): reading and voiding each one answers a documented status and a conforming body,
    never a 5xx (voiding the demo draft was a 500 once)."""
    headers = o2s["headers"]
    schema = schemathesis.openapi.from_url(f"{live_url}/api/v1/schema/", headers=headers)
    with rls.acting_as(PRINCIPAL):
        customer = o2s["customer"]
        draft, open_, paid, void = (
            make_invoice(customer, issue=state != "draft") for state in ("draft", "o", "p", "v")
        )
        pay_invoice(paid, principal=PRINCIPAL)
        invoice_void(principal=PRINCIPAL, invoice_id=void.id, reason="schemathesis")
    demo = [(draft.id, "draft"), (open_.id, "open"), (paid.id, "paid"), (void.id, "void")]

    answers: dict[str, set[int]] = {}
    for invoice_id, status in demo:
        for method, path, body in (
            ("GET", "/invoices/{invoice_id}/", None),
            ("POST", "/invoices/{invoice_id}/void/", {"reason": "schemathesis"}),
        ):
            parts: dict[str, Any] = {"path_parameters": {"invoice_id": str(invoice_id)}}
            if body is not None:
                parts.update(body=body, media_type="application/json")
            case = schema[f"/api/v1{path}"][method].Case(**parts)
            response = case.call(base_url=live_url, headers=headers, timeout=30)
            case.validate_response(response, checks=CHECKS, headers=headers)
            answers.setdefault(f"{method} {status}", set()).add(response.status_code)

    assert answers == {
        "GET draft": {200},
        "GET open": {200},
        "GET paid": {200},
        "GET void": {200},
        "POST draft": {409},  # invoice_invalid_state: a draft was never issued
        "POST open": {200},
        "POST paid": {409},
        "POST void": {409},
    }
