"""Reads of customer data, always scoped to the acting principal."""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Prefetch, QuerySet

from billing.errors import CustomerNotFoundError, ProductNotFoundError, ProductNotPricedError, UnknownProductError
from billing.models import Customer, CustomerMembership, Product, ProductPrice, TaxTreatment
from paymenter import rls
from paymenter.encryption import blind_index
from paymenter.principals import CustomerPrincipal, Principal, StaffPrincipal

EMAIL_INDEX_PURPOSE = "customer.email"


def customer_ids_for_user(*, user_id: int) -> frozenset[uuid.UUID]:
    """The customers a portal user belongs to.

    Runs as that user with no customers yet: the membership policy lets a user see their
    own membership rows and nothing else.
    """
    with rls.acting_as(CustomerPrincipal(user_id=user_id, customer_ids=frozenset())):
        ids = CustomerMembership.objects.filter(user_id=user_id).values_list("customer_id", flat=True)
        return frozenset(ids)


def customers_for_principal(*, principal: Principal) -> QuerySet[Customer]:
    queryset = Customer.objects.all()
    if isinstance(principal, CustomerPrincipal):
        queryset = queryset.filter(id__in=principal.customer_ids)
    return queryset


def customer_get(*, principal: Principal, customer_id: uuid.UUID | str) -> Customer:
    try:
        return customers_for_principal(principal=principal).get(id=customer_id)
    except (Customer.DoesNotExist, ValueError, ValidationError) as exc:  # malformed id: not found
        raise CustomerNotFoundError() from exc


def customer_get_by_external_id(*, principal: Principal, external_id: str) -> Customer:
    try:
        return customers_for_principal(principal=principal).get(external_id=external_id)
    except Customer.DoesNotExist as exc:
        raise CustomerNotFoundError() from exc


def customer_get_by_email(*, principal: Principal, email: str) -> Customer:
    try:
        return customers_for_principal(principal=principal).get(
            email_index=blind_index(email, purpose=EMAIL_INDEX_PURPOSE)
        )
    except Customer.DoesNotExist as exc:
        raise CustomerNotFoundError() from exc


def mask_pii(value: str | None) -> str:
    """What support staff see instead of personal data: first character and length hint."""
    if not value:
        return ""
    if "@" in value:
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain[:1]}***"
    return f"{value[:1]}***"


def principal_for_user(user: object) -> Principal | None:
    """Who a logged-in Django user acts as: staff with staff scope, portal users with
    their customers' scope; ``None`` for anonymous or inactive users."""
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return None
    user_id: int = user.pk  # type: ignore[attr-defined]
    if getattr(user, "is_staff", False):
        return StaffPrincipal(user_id=user_id, username=str(getattr(user, "username", "")))
    return CustomerPrincipal(user_id=user_id, customer_ids=customer_ids_for_user(user_id=user_id))


# --- the product catalogue (managed by staff in the admin; the API only reads it) ---------


def products_active() -> QuerySet[Product]:
    """Active products, ordered by code, with their prices prefetched (two queries)."""
    return Product.objects.filter(active=True).prefetch_related(
        Prefetch("prices", queryset=ProductPrice.objects.order_by("currency"))
    )


def product_get(*, code: str) -> Product:
    try:
        return products_active().get(code=code)
    except Product.DoesNotExist as exc:
        raise ProductNotFoundError() from exc


@dataclass(frozen=True)
class CatalogueEntry:
    """An active product as an invoice line needs it, with its unit price (minor units,
    GST-exclusive) in one currency; ``None`` when it has no price in that currency."""

    code: str
    description: str
    tax_treatment: TaxTreatment
    unit_amount_minor: int | None


# The active products among some codes, each with its price in one currency (or null), as
# one JSON array: plain SQL, so that a read can embed it as a subquery.
_CATALOGUE_SQL = (
    "SELECT coalesce(jsonb_agg(jsonb_build_object("  # noqa: S608 - constant table names
    "'code', p.code, 'description', p.description, 'tax_treatment', p.tax_treatment, "
    f"'unit_amount_minor', (SELECT pp.unit_amount_minor FROM {ProductPrice._meta.db_table} pp "
    "WHERE pp.product_id = p.id AND pp.currency = %s)) ORDER BY p.code), '[]'::jsonb) "
    f"FROM {Product._meta.db_table} p WHERE p.active AND p.code = ANY(%s)"
)


def catalogue_entries_sql(*, codes: Collection[str], currency: str) -> tuple[str, list[Any]]:
    """The entries of :func:`catalogue_entries` as a scalar subquery (one JSON array) and
    its parameters, to embed in another read (the catalogue then costs no round trip of its
    own); parse the value with :func:`catalogue_entries_parse`."""
    return _CATALOGUE_SQL, [currency, sorted(codes)]


def catalogue_entries_parse(value: Iterable[Mapping[str, Any]] | str | None) -> dict[str, CatalogueEntry]:
    rows: Iterable[Mapping[str, Any]] = json.loads(value) if isinstance(value, str) else (value or ())
    return {
        str(row["code"]): CatalogueEntry(
            code=str(row["code"]),
            description=str(row["description"]),
            tax_treatment=TaxTreatment(row["tax_treatment"]),
            unit_amount_minor=int(row["unit_amount_minor"]) if row["unit_amount_minor"] is not None else None,
        )
        for row in rows
    }


def catalogue_entries(*, codes: Collection[str], currency: str) -> dict[str, CatalogueEntry]:
    """The active products among ``codes`` with their price in ``currency``, by code (one
    query); unknown and retired codes are absent."""
    sql, params = catalogue_entries_sql(codes=codes, currency=currency)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return catalogue_entries_parse(row[0] if row is not None else None)


def catalogue_price_for(
    entries: Mapping[str, CatalogueEntry], *, code: str, currency: str, field: str = "product_code"
) -> CatalogueEntry:
    """The entry of ``code`` from :func:`catalogue_entries` (or the parsed expression), if it
    can be invoiced in ``currency``. ``field`` names the input field in the errors
    (``lines.0.product_code``): 422 ``unknown_product`` or ``product_not_priced_in_currency``."""
    entry = entries.get(code)
    if entry is None:
        raise UnknownProductError(code=code, field=field)
    if entry.unit_amount_minor is None:
        raise ProductNotPricedError(code=code, currency=currency, field=field)
    return entry
