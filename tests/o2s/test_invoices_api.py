"""``/api/v1/invoices/``: O2S invoices by product code; the server computes every amount."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import resolve
from rest_framework import serializers

from audit.models import AuditEvent
from billing.models import Customer, TaxTreatment
from invoices.models import Invoice, InvoiceStatus
from invoices.pay_links import PayLinkClaims, pay_link_verify
from invoices.pricing import InvoiceLineInput
from invoices.services import invoice_create, invoice_issue
from o2s.api.serializers import InvoiceLineSerializer, InvoiceSerializer
from paymenter.models import OutboxMessage
from paymenter.principals import SystemPrincipal
from tests.factories import make_customer
from tests.o2s.api_helpers import O2SClient, error_code, make_api_client, make_product, side_effects

pytestmark = pytest.mark.usefixtures("db", "system_principal")

URL = "/api/v1/invoices/"


@pytest.fixture
def api(db: None, system_principal: object) -> O2SClient:
    return make_api_client()


@pytest.fixture
def au_customer(db: None, system_principal: object) -> Customer:
    return make_customer(billing_country="AU")


@pytest.fixture
def products(db: None, system_principal: object) -> None:
    make_product("vps-small", prices={"AUD": 1999, "USD": 1300})
    make_product("ipv4", prices={"AUD": 5, "USD": 4}, description="IPv4 address")
    make_product("domain-au", prices={"AUD": 2500}, tax_treatment=TaxTreatment.GST_FREE, description=".au domain")


def _body(who: Customer, /, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "customer": str(who.id),
        "currency": "AUD",
        "lines": [
            {"product_code": "vps-small", "quantity": 3, "period_start": "2026-11-01", "period_end": "2026-11-30"},
            {"product_code": "ipv4", "quantity": 1},
        ],
    }
    body.update(overrides)
    return body


def _without_pay_url(invoice: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in invoice.items() if key != "pay_url"}


def _pay_link_claims(pay_url: str) -> PayLinkClaims:
    """What a ``pay_url`` names, by the same verification the hosted page applies."""
    assert pay_url.startswith(f"{settings.PUBLIC_BASE_URL}/"), pay_url
    return pay_link_verify(resolve(urlsplit(pay_url).path).kwargs["token"])


def _amounts(line: dict[str, Any]) -> tuple[Any, ...]:
    keys = ("product_code", "quantity", "unit_amount_minor", "tax_code", "tax_rate")
    return (*(line[k] for k in keys), line["subtotal_minor"], line["tax_minor"], line["total_minor"])


# --- creation ------------------------------------------------------------------------------


@pytest.mark.usefixtures("products")
def test_australian_customer_pays_ten_percent_gst_on_catalogue_prices(api: O2SClient, au_customer: Customer) -> None:
    response = api.post(URL, _body(au_customer))

    assert response.status_code == 201
    data = response.json()
    assert [_amounts(line) for line in data["lines"]] == [
        ("vps-small", 3, 1999, "GST", "0.1000", 5997, 600, 6597),
        ("ipv4", 1, 5, "GST", "0.1000", 5, 1, 6),
    ]
    assert (data["subtotal_minor"], data["tax_minor"], data["total_minor"]) == (6002, 601, 6603)
    assert (data["amount_paid_minor"], data["amount_due_minor"]) == (0, 6603)
    assert (data["status"], data["currency"], data["is_tax_invoice"], data["checksum_valid"]) == (
        "open",
        "AUD",
        True,
        True,
    )
    assert data["number"].startswith("INV-")
    assert data["lines"][0]["description"] == "VPS small, 1 month"
    assert (data["lines"][0]["period_start"], data["lines"][0]["period_end"]) == ("2026-11-01", "2026-11-30")
    assert (data["customer"], data["customer_external_id"]) == (str(au_customer.id), au_customer.external_id)
    assert data["pay_url"].startswith("http")
    invoice = Invoice.objects.get(id=data["id"])
    assert list(invoice.lines.order_by("position").values_list("product_code", flat=True)) == ["vps-small", "ipv4"]


@pytest.mark.usefixtures("products")
def test_customer_abroad_is_gst_free_export_in_their_currency(api: O2SClient) -> None:
    customer = make_customer(billing_country="US")

    response = api.post(
        URL,
        {
            "customer_external_id": customer.external_id,
            "currency": "USD",
            "lines": [{"product_code": "vps-small", "quantity": 2}],
        },
    )

    assert response.status_code == 201
    data = response.json()
    assert [_amounts(line) for line in data["lines"]] == [
        ("vps-small", 2, 1300, "GST_FREE_EXPORT", "0.0000", 2600, 0, 2600)
    ]
    assert (data["subtotal_minor"], data["tax_minor"], data["total_minor"], data["amount_due_minor"]) == (
        2600,
        0,
        2600,
        2600,
    )


@pytest.mark.usefixtures("products")
def test_gst_free_product_is_gst_free_for_an_australian_customer(api: O2SClient, au_customer: Customer) -> None:
    response = api.post(
        URL,
        _body(
            au_customer,
            lines=[{"product_code": "domain-au", "quantity": 1}, {"product_code": "vps-small", "quantity": 1}],
        ),
    )

    assert response.status_code == 201
    data = response.json()
    assert [_amounts(line) for line in data["lines"]] == [
        ("domain-au", 1, 2500, "GST_FREE", "0.0000", 2500, 0, 2500),
        ("vps-small", 1, 1999, "GST", "0.1000", 1999, 200, 2199),
    ]
    assert (data["subtotal_minor"], data["tax_minor"], data["total_minor"]) == (4499, 200, 4699)


# --- refusals: nothing written -------------------------------------------------------------


@pytest.mark.usefixtures("products")
@pytest.mark.parametrize(
    ("change", "status", "code", "field"),
    [
        ({"total_minor": 1}, 400, "unknown_field", "total_minor"),
        ({"tax_minor": 0}, 400, "unknown_field", "tax_minor"),
        ({"status": "paid"}, 400, "unknown_field", "status"),
        (
            {"lines": [{"product_code": "vps-small", "quantity": 1, "tax_minor": 0}]},
            400,
            "unknown_field",
            "lines.0.tax_minor",
        ),
        (
            {"lines": [{"product_code": "vps-small", "quantity": 1, "total_minor": 9}]},
            400,
            "unknown_field",
            "lines.0.total_minor",
        ),
        ({"lines": [{"product_code": "vps-small", "quantity": "2"}]}, 400, "validation_error", "lines.0.quantity"),
        ({"lines": [{"product_code": "vps-small", "quantity": 2.0}]}, 400, "validation_error", "lines.0.quantity"),
        ({"lines": [{"product_code": "vps-small", "quantity": True}]}, 400, "validation_error", "lines.0.quantity"),
        ({"lines": [{"product_code": "vps-small", "quantity": -1}]}, 400, "validation_error", "lines.0.quantity"),
        ({"lines": [{"product_code": "vps-small", "quantity": 0}]}, 400, "validation_error", "lines.0.quantity"),
        ({"lines": [{"product_code": "vps-small", "quantity": 10**30}]}, 400, "validation_error", "lines.0.quantity"),
        (
            {"lines": [{"product_code": "vps-small", "quantity": 1_000_001}]},
            400,
            "validation_error",
            "lines.0.quantity",
        ),
        ({"lines": [{"product_code": "vps-small"}]}, 400, "validation_error", "lines.0.quantity"),
        ({"lines": []}, 400, "validation_error", "lines"),
        ({"lines": [{"product_code": "vps-small", "quantity": 1}] * 201}, 400, "validation_error", "lines"),
        ({"lines": [{"quantity": 1}]}, 400, "validation_error", "lines.0.product_code"),
        (
            {
                "lines": [
                    {
                        "product_code": "vps-small",
                        "quantity": 1,
                        "period_start": "2026-12-01",
                        "period_end": "2026-11-01",
                    }
                ]
            },
            400,
            "validation_error",
            "lines.0.period_end",
        ),
        ({"currency": "aud"}, 400, "validation_error", "currency"),
        ({"currency": "XYZ"}, 400, "unknown_currency", "currency"),
        ({"customer": 12345}, 400, "validation_error", "customer"),
        ({"customer": str(uuid.uuid4())}, 422, "unknown_customer", "customer"),
        (
            {"lines": [{"product_code": "no-such-product", "quantity": 1}]},
            422,
            "unknown_product",
            "lines.0.product_code",
        ),
        ({"currency": "EUR"}, 422, "product_not_priced_in_currency", "lines.0.product_code"),
    ],
)
def test_bad_invoice_requests_are_refused_and_write_nothing(
    api: O2SClient, au_customer: Customer, *, change: dict[str, Any], status: int, code: str, field: str
) -> None:
    before = side_effects()

    response = api.post(URL, _body(au_customer, **change))

    assert (response.status_code, error_code(response)) == (status, code), response.json()
    assert field in response.json()["error"]["fields"]
    assert side_effects() == before


@pytest.mark.usefixtures("products")
def test_unknown_customer_by_external_id_and_both_customer_fields(api: O2SClient, au_customer: Customer) -> None:
    body = _body(au_customer)
    del body["customer"]
    unknown = api.post(URL, {**body, "customer_external_id": "nobody"})
    both = api.post(URL, {**body, "customer": str(au_customer.id), "customer_external_id": au_customer.external_id})
    neither = api.post(URL, body)

    assert (unknown.status_code, error_code(unknown)) == (422, "unknown_customer")
    assert (both.status_code, error_code(both)) == (400, "validation_error")
    assert (neither.status_code, error_code(neither)) == (400, "validation_error")


@pytest.mark.usefixtures("products")
def test_malformed_wrong_type_and_oversized_bodies(api: O2SClient, au_customer: Customer, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    before = side_effects()

    malformed = api.post_raw(URL, b'{"customer": "x", "lines": [')
    form = api.post_raw(URL, "customer=x", content_type="application/x-www-form-urlencoded")
    text = api.post_raw(URL, "hello", content_type="text/plain")
    big = json.dumps(
        _body(au_customer, lines=[{"product_code": "vps-small", "quantity": 1, "description": "x" * 400}] * 50)
    )
    oversized = api.post_raw(URL, big)

    assert (malformed.status_code, error_code(malformed)) == (400, "malformed_json")
    assert (form.status_code, error_code(form)) == (415, "unsupported_media_type")
    assert (text.status_code, error_code(text)) == (415, "unsupported_media_type")
    assert (oversized.status_code, error_code(oversized)) == (413, "payload_too_large")
    assert side_effects() == before


# --- custom lines --------------------------------------------------------------------------

CUSTOM_LINE = {"description": "Migration assistance (2 h)", "quantity": 2, "unit_amount_minor": 9000}


@pytest.mark.usefixtures("products")
def test_custom_line_without_permission_is_403_and_writes_nothing(api: O2SClient, au_customer: Customer) -> None:
    before = side_effects()

    response = api.post(URL, _body(au_customer, lines=[{"product_code": "vps-small", "quantity": 1}, CUSTOM_LINE]))

    assert (response.status_code, error_code(response)) == (403, "custom_lines_not_permitted")
    assert response.json()["error"]["fields"] == {"lines.1.unit_amount_minor": ["not permitted for this API key"]}
    assert side_effects() == before


@pytest.mark.usefixtures("products")
def test_custom_line_with_permission_is_created_and_audited(au_customer: Customer) -> None:
    api = make_api_client(custom_lines=True)

    response = api.post(URL, _body(au_customer, lines=[{"product_code": "vps-small", "quantity": 1}, CUSTOM_LINE]))

    assert response.status_code == 201
    data = response.json()
    assert [_amounts(line) for line in data["lines"]] == [
        ("vps-small", 1, 1999, "GST", "0.1000", 1999, 200, 2199),
        (None, 2, 9000, "GST", "0.1000", 18000, 1800, 19800),
    ]
    events = AuditEvent.objects.filter(object_id=data["id"], action="invoice.custom_lines")
    assert events.count() == 1
    assert events.get().payload["lines"] == [
        {"position": 2, "description": "Migration assistance (2 h)", "quantity": 2, "unit_amount_minor": 9000}
    ]


@pytest.mark.usefixtures("products")
def test_custom_line_needs_a_description_and_not_both_kinds(au_customer: Customer) -> None:
    api = make_api_client(custom_lines=True)
    no_description = api.post(URL, _body(au_customer, lines=[{"quantity": 1, "unit_amount_minor": 100}]))
    both = api.post(
        URL, _body(au_customer, lines=[{"product_code": "vps-small", "quantity": 1, "unit_amount_minor": 1}])
    )
    negative = api.post(URL, _body(au_customer, lines=[{**CUSTOM_LINE, "unit_amount_minor": -5}]))

    assert (no_description.status_code, error_code(no_description)) == (400, "validation_error")
    assert (both.status_code, error_code(both)) == (400, "validation_error")
    assert (negative.status_code, error_code(negative)) == (400, "validation_error")
    assert "lines.0.unit_amount_minor" in negative.json()["error"]["fields"]


# --- preview -------------------------------------------------------------------------------


@pytest.mark.usefixtures("products")
def test_preview_computes_the_same_amounts_and_writes_nothing(api: O2SClient, au_customer: Customer) -> None:
    before = side_effects()

    preview = api.post(f"{URL}preview/", _body(au_customer))

    assert preview.status_code == 200
    assert side_effects() == before
    created = api.post(URL, _body(au_customer)).json()
    data = preview.json()
    assert [_amounts(line) for line in data["lines"]] == [_amounts(line) for line in created["lines"]]
    for key in ("subtotal_minor", "tax_minor", "total_minor", "amount_due_minor", "currency", "issue_date", "due_date"):
        assert data[key] == created[key]


@pytest.mark.usefixtures("products")
def test_preview_applies_the_same_refusals(api: O2SClient, au_customer: Customer) -> None:
    before = side_effects()
    custom = api.post(f"{URL}preview/", _body(au_customer, lines=[CUSTOM_LINE]))
    unknown = api.post(f"{URL}preview/", _body(au_customer, lines=[{"product_code": "nope", "quantity": 1}]))
    assert (custom.status_code, error_code(custom)) == (403, "custom_lines_not_permitted")
    assert (unknown.status_code, error_code(unknown)) == (422, "unknown_product")
    assert side_effects() == before


# --- get, void -----------------------------------------------------------------------------


@pytest.mark.usefixtures("products")
def test_get_returns_the_invoice_and_404_for_a_missing_one(api: O2SClient, au_customer: Customer) -> None:
    created = api.post(URL, _body(au_customer)).json()

    found = api.get(f"{URL}{created['id']}/")
    missing = api.get(f"{URL}{uuid.uuid4()}/")

    # A pay link carries its signing time (TimestampSigner): two reads a second apart get
    # different links to the same page. Everything else is identical, and both links
    # verify to this very invoice and customer.
    assert found.status_code == 200
    assert _without_pay_url(found.json()) == _without_pay_url(created)
    for pay_url in (created["pay_url"], found.json()["pay_url"]):
        assert _pay_link_claims(pay_url) == PayLinkClaims(
            invoice_id=uuid.UUID(created["id"]), customer_id=au_customer.id
        )
    assert (missing.status_code, error_code(missing)) == (404, "invoice_not_found")
    assert set(missing.json()["error"]) == {"code", "message", "fields"}


@pytest.mark.usefixtures("products")
def test_void_sets_status_and_records_the_callback(api: O2SClient, au_customer: Customer) -> None:
    created = api.post(URL, _body(au_customer)).json()
    outbox_before = OutboxMessage.objects.count()

    voided = api.post(f"{URL}{created['id']}/void/", {"reason": "ordered by mistake"})
    again = api.post(f"{URL}{created['id']}/void/")
    missing = api.post(f"{URL}{uuid.uuid4()}/void/")

    assert voided.status_code == 200
    assert (voided.json()["status"], voided.json()["amount_due_minor"], voided.json()["pay_url"]) == ("void", 0, None)
    assert OutboxMessage.objects.count() == outbox_before + 1
    message = OutboxMessage.objects.order_by("-id").first()
    assert message is not None
    assert (message.payload["type"], message.payload["data"]["invoice_id"]) == ("invoice.voided", created["id"])
    assert (again.status_code, error_code(again)) == (409, "invoice_invalid_state")
    assert (missing.status_code, error_code(missing)) == (404, "invoice_not_found")
    assert OutboxMessage.objects.count() == outbox_before + 1


@pytest.mark.usefixtures("products")
def test_void_refuses_unknown_fields(api: O2SClient, au_customer: Customer) -> None:
    created = api.post(URL, _body(au_customer)).json()
    response = api.post(f"{URL}{created['id']}/void/", {"status": "void"})
    assert (response.status_code, error_code(response)) == (400, "unknown_field")
    assert Invoice.objects.get(id=created["id"]).status == InvoiceStatus.OPEN


@pytest.mark.usefixtures("products")
def test_create_with_an_idempotency_key_runs_once(api: O2SClient, au_customer: Customer) -> None:
    first = api.post(URL, _body(au_customer), HTTP_IDEMPOTENCY_KEY="o2s-order-77")
    second = api.post(URL, _body(au_customer), HTTP_IDEMPOTENCY_KEY="o2s-order-77")

    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert Invoice.objects.filter(customer=au_customer).count() == 1


# --- list ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("products")
def test_list_filters_and_walks_pages_with_the_cursor(api: O2SClient, au_customer: Customer) -> None:
    other = make_customer()
    ids = [api.post(URL, _body(au_customer)).json()["id"] for _ in range(5)]
    api.post(URL, _body(other))
    api.post(f"{URL}{ids[0]}/void/")

    seen: list[str] = []
    page = api.get(URL, {"customer": str(au_customer.id), "page_size": 2}).json()
    while True:
        assert len(page["results"]) <= 2
        seen.extend(item["id"] for item in page["results"])
        if page["next"] is None:
            break
        page = api.client.get(page["next"], **api.headers).json()
    void = api.get(URL, {"customer": str(au_customer.id), "status": "void"}).json()
    by_external = api.get(URL, {"customer_external_id": other.external_id}).json()

    assert seen == list(reversed(ids))  # newest first, each exactly once
    assert [item["id"] for item in void["results"]] == [ids[0]]
    assert [item["customer"] for item in by_external["results"]] == [str(other.id)]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "nonsense"}, "status"),
        ({"customer": "not-a-uuid"}, "customer"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "1000"}, "page_size"),
        ({"cursor": "garbage"}, "cursor"),
        ({"sort": "total"}, "sort"),
    ],
)
def test_list_refuses_bad_filters(api: O2SClient, params: dict[str, str], field: str) -> None:
    response = api.get(URL, params)
    assert response.status_code == 400
    assert error_code(response) in {"validation_error", "unknown_field"}
    assert field in response.json()["error"]["fields"]


@pytest.mark.usefixtures("products")
def test_list_query_count_does_not_grow_with_the_page(api: O2SClient) -> None:
    few, many = make_customer(), make_customer()
    for _ in range(2):
        api.post(URL, _body(few))
    for _ in range(10):
        api.post(URL, _body(many))
    api.get(URL, {"customer": str(few.id)})  # warm-up: the key's last-used stamp is written once

    with CaptureQueriesContext(connection) as two:
        response_two = api.get(URL, {"customer": str(few.id)})
    with CaptureQueriesContext(connection) as ten:
        response_ten = api.get(URL, {"customer": str(many.id)})

    assert (len(response_two.json()["results"]), len(response_ten.json()["results"])) == (2, 10)
    assert len(two.captured_queries) == len(ten.captured_queries)
    assert all(item["checksum_valid"] for item in response_ten.json()["results"])


# --- services: per-line treatment survives issuing a draft ---------------------------------


@pytest.mark.usefixtures("products")
def test_a_draft_keeps_its_per_line_treatment_when_issued(system_principal: SystemPrincipal) -> None:
    customer = make_customer(billing_country="AU")
    lines = [
        InvoiceLineInput(
            description=".au domain",
            quantity=1,
            unit_amount_minor=2500,
            product_code="domain-au",
            tax_treatment=TaxTreatment.GST_FREE,
        ),
        InvoiceLineInput(description="VPS", quantity=1, unit_amount_minor=1000, product_code="vps-small"),
    ]
    draft = invoice_create(principal=system_principal, customer=customer, lines=lines, currency="AUD")

    issued = invoice_issue(principal=system_principal, invoice_id=draft.id)

    stored = list(issued.lines.order_by("position").values_list("product_code", "tax_code", "tax_minor"))
    assert stored == [("domain-au", "GST_FREE", 0), ("vps-small", "GST", 100)]
    assert (issued.subtotal_minor, issued.tax_minor, issued.total_minor) == (3500, 100, 3600)


# --- the response is rendered directly, exactly as DRF's fields would --------------------------


@pytest.mark.usefixtures("products")
def test_invoices_render_exactly_as_their_declared_fields_would(
    api: O2SClient, au_customer: Customer, system_principal: SystemPrincipal
) -> None:
    """``InvoiceSerializer.to_representation`` skips DRF's field-by-field machinery for speed;
    it must produce what that machinery produces, for every kind of invoice."""
    custom = make_api_client(custom_lines=True)
    body = _body(au_customer)
    body["lines"].append({"description": "Migration", "unit_amount_minor": 12345, "quantity": 2})
    issued = Invoice.objects.get(id=custom.post(URL, body).json()["id"])
    abroad = make_customer(billing_country="NZ")
    exported = Invoice.objects.get(id=api.post(URL, _body(abroad, currency="USD")).json()["id"])
    draft = invoice_create(
        principal=system_principal,
        customer=au_customer,
        lines=[InvoiceLineInput(description="Draft line", quantity=1, unit_amount_minor=100)],
    )
    voided = Invoice.objects.get(id=api.post(URL, _body(au_customer)).json()["id"])
    api.post(f"{URL}{voided.id}/void/", {"reason": "cancelled"})

    for invoice in Invoice.objects.filter(id__in=[issued.id, exported.id, draft.id, voided.id]).prefetch_related(
        "lines"
    ):
        serializer = InvoiceSerializer(context={})
        direct = serializer.to_representation(invoice)
        generic = dict(serializers.Serializer.to_representation(InvoiceSerializer(context={}), invoice))
        assert (direct.pop("pay_url") is None) == (generic.pop("pay_url") is None)  # signed with the time
        generic["lines"] = [
            dict(serializers.Serializer.to_representation(InvoiceLineSerializer(), line))
            for line in invoice.lines.all()
        ]
        for line in generic["lines"]:
            line["product_code"] = line["product_code"] or None  # the API's one deliberate change
        assert list(direct) == list(generic)
        assert direct == generic
    assert {Invoice.objects.get(id=voided.id).status, draft.status} == {"void", "draft"}
