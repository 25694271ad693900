"""Every O2S POST parses its body with the strict parser: a body it refuses is 400
``malformed_json`` in the one error shape, never a 500, and nothing is written."""

from __future__ import annotations

import time
from typing import Any

import pytest
from rest_framework.settings import api_settings

from billing.models import Customer
from invoices.models import Invoice, InvoiceStatus
from o2s.api.base import O2SAPIView
from paymenter.json_parser import StrictJSONParser
from tests.factories import make_customer, make_invoice
from tests.o2s.api_helpers import O2SClient, make_api_client, side_effects

pytestmark = pytest.mark.usefixtures("db", "system_principal")


@pytest.fixture
def api() -> O2SClient:
    return make_api_client(custom_lines=True)


@pytest.fixture
def open_invoice() -> Invoice:
    return make_invoice(make_customer())


def _posts(invoice: Invoice) -> list[str]:
    return [
        "/api/v1/customers/",
        "/api/v1/invoices/",
        "/api/v1/invoices/preview/",
        f"/api/v1/invoices/{invoice.id}/void/",
    ]


def _deep(levels: int) -> bytes:
    return b'{"currency": "AUD", "lines": ' + b"[" * levels + b"]" * levels + b"}"


def _assert_malformed(response: Any, message: str) -> None:
    assert response.status_code == 400
    assert response.json() == {
        "error": {"code": "malformed_json", "message": f"JSON parse error - {message}", "fields": {}}
    }


def test_the_o2s_views_and_every_other_drf_view_use_the_strict_parser() -> None:
    default_parsers: list[Any] = list(api_settings.DEFAULT_PARSER_CLASSES)  # classes once resolved

    assert O2SAPIView.parser_classes == [StrictJSONParser]
    assert default_parsers == [StrictJSONParser]


@pytest.mark.parametrize("levels", [1_000, 100_000])
def test_deep_json_is_a_fast_400_on_every_post_and_writes_nothing(
    api: O2SClient, open_invoice: Invoice, levels: int
) -> None:
    before = side_effects()

    for path in _posts(open_invoice):
        started = time.perf_counter()
        response = api.post_raw(path, _deep(levels))
        with_key = api.client.generic(
            "POST", path, _deep(levels), content_type="application/json", HTTP_IDEMPOTENCY_KEY="deep-1", **api.headers
        )

        assert time.perf_counter() - started < 5.0, path
        _assert_malformed(response, "nested deeper than 32 levels")
        _assert_malformed(with_key, "nested deeper than 32 levels")
    assert side_effects() == before
    assert Invoice.objects.get(id=open_invoice.id).status == InvoiceStatus.OPEN


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\x00" * 32, "Expecting value: line 1 column 1"),
        (b'{"external_id": "o2s-1", "name": "M\xfcller"}', "the body is not valid UTF-8"),
        (b'{"currency": "AUD", "quantity": NaN}', "NaN is not a JSON number"),
        (b'{"currency": "AUD", "quantity": Infinity}', "Infinity is not a JSON number"),
        (b'{"currency": "AUD", "quantity": -Infinity}', "-Infinity is not a JSON number"),
        (b'{"reason": "x", "reason": "y"}', "an object has a duplicate key"),
        (b'{"\\ud800": "x"}', "a string holds a lone surrogate, which is not Unicode text"),
    ],
)
def test_bodies_the_strict_parser_refuses_are_400_on_every_post_and_write_nothing(
    api: O2SClient, open_invoice: Invoice, body: bytes, message: str
) -> None:
    before = side_effects()

    for path in _posts(open_invoice):
        response = api.post_raw(path, body)

        assert response.status_code == 400, path
        assert response.json()["error"]["code"] == "malformed_json"
        assert response.json()["error"]["message"].startswith(f"JSON parse error - {message}")
        assert response.json()["error"]["fields"] == {}
    assert side_effects() == before
    assert Invoice.objects.get(id=open_invoice.id).status == InvoiceStatus.OPEN


def test_a_duplicate_key_is_refused_where_the_last_value_would_have_been_valid(api: O2SClient) -> None:
    # Python would keep the last value (a valid country); another reader would see "ZZ".
    body = (
        b'{"external_id": "o2s-dup", "billing_country": "ZZ", "billing_country": "AU",'
        b' "name": "Dup Pty Ltd", "email": "dup@example.test"}'
    )
    before = side_effects()

    response = api.post_raw("/api/v1/customers/", body)

    _assert_malformed(response, "an object has a duplicate key")
    assert not Customer.objects.filter(external_id="o2s-dup").exists()
    assert side_effects() == before


def test_the_body_size_limit_still_answers_413(api: O2SClient, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    before = side_effects()

    response = api.post_raw("/api/v1/customers/", b'{"name": "' + b"x" * 5_000 + b'"}')

    assert (response.status_code, response.json()["error"]["code"]) == (413, "payload_too_large")
    assert side_effects() == before


def test_a_valid_body_at_the_depth_limit_is_parsed(api: O2SClient) -> None:
    # 31 levels of arrays inside the body object: 32 in all, the limit; the serializer refuses the shape
    body = b'{"currency": "AUD", "lines": ' + b"[" * 31 + b"]" * 31 + b"}"

    response = api.post_raw("/api/v1/invoices/", body)

    assert (response.status_code, response.json()["error"]["code"]) == (400, "validation_error")
