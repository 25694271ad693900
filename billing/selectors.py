"""Reads of customer data, always scoped to the acting principal."""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.db.models import Prefetch, QuerySet

from billing.errors import CustomerNotFoundError, ProductNotFoundError, ProductNotPricedError, UnknownProductError
from billing.models import Customer, CustomerMembership, Product, ProductPrice
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


def product_price_for(*, code: str, currency: str, field: str = "product_code") -> tuple[Product, int]:
    """The active product ``code`` and its unit price (minor units, GST-exclusive) in
    ``currency``. ``field`` names the input field in the errors (``lines.0.product_code``)."""
    product = Product.objects.filter(code=code, active=True).first()
    if product is None:
        raise UnknownProductError(code=code, field=field)
    price = ProductPrice.objects.filter(product=product, currency=currency).values_list("unit_amount_minor", flat=True)
    amount = price.first()
    if amount is None:
        raise ProductNotPricedError(code=code, currency=currency, field=field)
    return product, int(amount)
