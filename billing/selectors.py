"""Reads of customer data, always scoped to the acting principal."""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from billing.errors import CustomerNotFoundError
from billing.models import Customer, CustomerMembership
from paymenter import rls
from paymenter.encryption import blind_index
from paymenter.principals import CustomerPrincipal, Principal

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
