"""Writes of customer data. Every change is audited in the same transaction."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError
from guardian.shortcuts import assign_perm

from audit.actions import AuditAction
from audit.services import audit_record
from billing.errors import DuplicateCustomerError, InvalidCustomerError
from billing.models import Customer, CustomerMembership
from billing.selectors import EMAIL_INDEX_PURPOSE, customer_get
from paymenter import rls
from paymenter.encryption import blind_index
from paymenter.principals import Principal

ADDRESS_KEYS = frozenset({"line1", "line2", "city", "region", "postcode", "country"})
CONTACT_FIELDS = ("name", "email", "phone", "postal_address", "tax_id")
DEFAULT_MEMBER_PERMISSIONS = ("view_customer_invoices", "pay_customer_invoices")
_COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
_MAX_TEXT = 500


def _clean_contact(data: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
    """Validate contact details; collects every problem before refusing."""
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, Any] = {}
    for name in ("name", "email"):
        if name in data or not partial:
            value = data.get(name)
            if not isinstance(value, str) or not value.strip():
                errors[name] = ["required"]
            elif len(value) > _MAX_TEXT:
                errors[name] = [f"at most {_MAX_TEXT} characters"]
            else:
                cleaned[name] = value.strip()
    if "email" in cleaned:
        try:
            validate_email(cleaned["email"])
        except ValidationError:
            errors["email"] = ["not a valid email address"]
    for name in ("phone", "tax_id"):
        if name in data:
            value = data[name]
            if value is not None and (not isinstance(value, str) or len(value) > _MAX_TEXT):
                errors[name] = ["must be text of at most 500 characters"]
            else:
                cleaned[name] = value.strip() if isinstance(value, str) and value.strip() else None
    if "postal_address" in data:
        address = data["postal_address"]
        if address is None:
            cleaned["postal_address"] = None
        elif (
            not isinstance(address, Mapping)
            or not set(address) <= ADDRESS_KEYS
            or not all(isinstance(v, str) and len(v) <= _MAX_TEXT for v in address.values())
        ):
            errors["postal_address"] = [f"an object with text fields among {sorted(ADDRESS_KEYS)}"]
        else:
            cleaned["postal_address"] = {k: v.strip() for k, v in address.items()}
    if errors:
        raise InvalidCustomerError(errors)
    return cleaned


def _clean_country(value: object) -> str:
    if not isinstance(value, str) or not _COUNTRY_RE.match(value.upper()):
        raise InvalidCustomerError({"billing_country": ["an ISO 3166-1 alpha-2 code such as AU"]})
    return value.upper()


def _raise_duplicate(exc: IntegrityError) -> None:
    constraint = getattr(getattr(exc.__cause__, "diag", None), "constraint_name", "") or ""
    if "email_index" in constraint:
        raise DuplicateCustomerError(field="email") from exc
    if "external_id" in constraint:
        raise DuplicateCustomerError(field="external_id") from exc
    raise exc


def customer_create(
    *,
    principal: Principal,
    external_id: str,
    billing_country: str,
    name: str,
    email: str,
    phone: str | None = None,
    postal_address: Mapping[str, str] | None = None,
    tax_id: str | None = None,
) -> Customer:
    if not isinstance(external_id, str) or not external_id.strip() or len(external_id) > 64:
        raise InvalidCustomerError({"external_id": ["required, at most 64 characters"]})
    country = _clean_country(billing_country)
    contact = _clean_contact(
        {"name": name, "email": email, "phone": phone, "postal_address": postal_address, "tax_id": tax_id},
        partial=False,
    )
    customer = Customer(
        external_id=external_id.strip(),
        billing_country=country,
        email_index=blind_index(contact["email"], purpose=EMAIL_INDEX_PURPOSE),
        **contact,
    )
    try:
        with rls.unit_of_work(principal):
            customer.save(force_insert=True)
            audit_record(
                action=AuditAction.CUSTOMER_CREATED,
                principal=principal,
                object_type="customer",
                object_id=str(customer.id),
                customer_id=customer.id,
                payload={"external_id": customer.external_id, "billing_country": country},
            )
    except IntegrityError as exc:
        _raise_duplicate(exc)
    return customer


def customer_update(*, principal: Principal, customer_id: uuid.UUID | str, changes: Mapping[str, Any]) -> Customer:
    """Change contact details and/or billing country. Unknown fields are refused."""
    unknown = set(changes) - {*CONTACT_FIELDS, "billing_country"}
    if unknown:
        raise InvalidCustomerError({name: ["unknown field"] for name in sorted(unknown)})
    contact = _clean_contact(changes, partial=True)
    country = _clean_country(changes["billing_country"]) if "billing_country" in changes else None
    try:
        with rls.unit_of_work(principal):
            customer = customer_get(principal=principal, customer_id=customer_id)
            customer = Customer.objects.select_for_update(no_key=True).get(pk=customer.pk)
            changed: list[str] = []
            before: dict[str, str] = {}
            for name, value in contact.items():
                if getattr(customer, name) != value:
                    setattr(customer, name, value)
                    changed.append(name)
            if "email" in changed:
                customer.email_index = blind_index(contact["email"], purpose=EMAIL_INDEX_PURPOSE)
                changed.append("email_index")
            if country is not None and country != customer.billing_country:
                before["billing_country"] = customer.billing_country
                customer.billing_country = country
                changed.append("billing_country")
            if changed:
                customer.save(update_fields=[*changed, "updated_at"])
                audit_record(
                    action=AuditAction.CUSTOMER_UPDATED,
                    principal=principal,
                    object_type="customer",
                    object_id=str(customer.id),
                    customer_id=customer.id,
                    # personal data is named, never copied into the audit trail
                    payload={
                        "changed_fields": sorted(f for f in changed if f != "email_index"),
                        "before": before,
                        "after": {"billing_country": country} if "billing_country" in before else {},
                    },
                )
    except IntegrityError as exc:
        _raise_duplicate(exc)
    return customer


def customer_grant_access(
    *,
    principal: Principal,
    customer_id: uuid.UUID | str,
    user: User,
    permissions: Iterable[str] = DEFAULT_MEMBER_PERMISSIONS,
) -> CustomerMembership:
    """Make ``user`` a member of the customer with the given object permissions."""
    if getattr(user, "is_staff", False):
        raise InvalidCustomerError({"user": ["staff users cannot be customer members"]})
    perms = sorted(set(permissions))
    allowed = {"view_customer_invoices", "pay_customer_invoices"}
    if not perms or not set(perms) <= allowed:
        raise InvalidCustomerError({"permissions": [f"choose from {sorted(allowed)}"]})
    with rls.unit_of_work(principal):
        customer = customer_get(principal=principal, customer_id=customer_id)
        membership, _ = CustomerMembership.objects.get_or_create(customer=customer, user=user)
        for perm in perms:
            assign_perm(f"billing.{perm}", user, customer)
        audit_record(
            action=AuditAction.CUSTOMER_ACCESS_GRANTED,
            principal=principal,
            object_type="customer",
            object_id=str(customer.id),
            customer_id=customer.id,
            payload={"user_id": user.pk, "permissions": perms},
        )
    return membership
