"""Shared set-up of the O2S resource API tests: a real API key, products, counters."""

from __future__ import annotations

import uuid
from typing import Any

from django.test import Client

from audit.models import AuditEvent
from billing.models import Customer, Product, ProductPrice, TaxTreatment
from invoices.models import Invoice
from o2s.models import IdempotencyRecord
from o2s.services import api_key_create
from paymenter import rls
from paymenter.models import OutboxMessage
from paymenter.principals import SystemPrincipal

PRINCIPAL = SystemPrincipal(label="test:o2s-api")


class O2SClient:
    """A Django test client that sends the key as O2S does, from an allowed address."""

    def __init__(self, raw_key: str) -> None:
        self.client = Client()
        self.headers: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Bearer {raw_key}", "REMOTE_ADDR": "127.0.0.1"}

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.client.get(path, params or {}, **self.headers)

    def post(self, path: str, body: Any = None, **extra: Any) -> Any:
        return self.client.post(
            path,
            body if body is not None else {},
            content_type="application/json",
            **{
                **self.headers,
                **extra,
            },
        )

    def post_raw(self, path: str, data: bytes | str, content_type: str = "application/json") -> Any:
        return self.client.generic("POST", path, data, content_type=content_type, **self.headers)

    def patch(self, path: str, body: Any) -> Any:
        return self.client.patch(path, body, content_type="application/json", **self.headers)


def make_api_client(*, custom_lines: bool = False) -> O2SClient:
    _, raw = api_key_create(
        principal=PRINCIPAL,
        name=f"o2s test {uuid.uuid4().hex[:6]}",
        allowed_networks=["127.0.0.1/32"],
        can_invoice_custom_lines=custom_lines,
        rate_limit_per_minute=100_000,
    )
    return O2SClient(raw)


def make_product(
    code: str | None = None,
    *,
    prices: dict[str, int] | None = None,
    tax_treatment: str = TaxTreatment.STANDARD,
    description: str = "VPS small, 1 month",
    active: bool = True,
) -> Product:
    product = Product.objects.create(
        code=code or f"vps-{uuid.uuid4().hex[:8]}", description=description, tax_treatment=tax_treatment, active=active
    )
    for currency, amount in (prices if prices is not None else {"AUD": 1999, "USD": 1300}).items():
        ProductPrice.objects.create(product=product, currency=currency, unit_amount_minor=amount)
    return product


def side_effects() -> dict[str, int]:
    """Rows a refused request must not leave behind."""
    with rls.acting_as(PRINCIPAL):
        return {
            "customers": Customer.objects.count(),
            "invoices": Invoice.objects.count(),
            "outbox": OutboxMessage.objects.count(),
            "audit": AuditEvent.objects.exclude(action="api_key.created").count(),
            "idempotency": IdempotencyRecord.objects.count(),
        }


def error_code(response: Any) -> str:
    return str(response.json()["error"]["code"])
