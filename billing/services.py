"""Writes of customer data. Every change is audited in the same transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from guardian.shortcuts import assign_perm

from audit.actions import AuditAction
from audit.services import audit_record
from audit.unit_of_work import unit_of_work
from billing.errors import DuplicateCustomerError, InvalidCustomerError
from billing.models import Customer, CustomerMembership, Product, ProductPrice
from billing.selectors import EMAIL_INDEX_PURPOSE, customer_get
from paymenter import rls
from paymenter.card_numbers import card_numbers_refuse
from paymenter.countries import INVALID_MESSAGE as INVALID_COUNTRY
from paymenter.countries import country_code_normalise
from paymenter.encryption import blind_index
from paymenter.principals import Principal, SystemPrincipal

ADDRESS_KEYS = frozenset({"line1", "line2", "city", "region", "postcode", "country"})
CONTACT_FIELDS = ("name", "email", "phone", "postal_address", "tax_id")
DEFAULT_MEMBER_PERMISSIONS = ("view_customer_invoices", "pay_customer_invoices")
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
            country = cleaned["postal_address"].get("country")
            if country:  # blank means "not given"; anything else is a real country
                code = country_code_normalise(country)
                if code is None:
                    errors["postal_address.country"] = [INVALID_COUNTRY]
                else:
                    cleaned["postal_address"]["country"] = code
    if errors:
        raise InvalidCustomerError(errors)
    return cleaned


def _clean_country(value: object) -> str:
    """The billing country decides GST: an assigned ISO 3166-1 code (``ZZ`` is none), upper case."""
    code = country_code_normalise(value)
    if code is None:
        raise InvalidCustomerError({"billing_country": [INVALID_COUNTRY]})
    return code


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
    # first: a card number typed into any field is refused whatever else is wrong (docs/security.md)
    card_numbers_refuse(
        {
            "external_id": external_id,
            "name": name,
            "email": email,
            "phone": phone,
            "postal_address": postal_address,
            "tax_id": tax_id,
        }
    )
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
        with unit_of_work(principal):
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
    card_numbers_refuse(changes)
    unknown = set(changes) - {*CONTACT_FIELDS, "billing_country"}
    if unknown:
        raise InvalidCustomerError({name: ["unknown field"] for name in sorted(unknown)})
    contact = _clean_contact(changes, partial=True)
    country = _clean_country(changes["billing_country"]) if "billing_country" in changes else None
    try:
        with unit_of_work(principal):
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
    with unit_of_work(principal):
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


# --- the product catalogue -----------------------------------------------------------------


def product_save(*, principal: Principal, product: Product, prices: Mapping[str, int]) -> Product:
    """Save a catalogue product (new or changed) and set its prices (GST-exclusive minor
    units per currency), audited in the same transaction: prices decide what O2S invoices
    charge. A currency not named keeps its price; prices are never deleted."""
    card_numbers_refuse({"code": product.code, "description": product.description})
    with unit_of_work(principal):
        created = product.pk is None
        product.save()
        for currency, unit_amount_minor in sorted(prices.items()):
            ProductPrice.objects.update_or_create(
                product=product, currency=currency, defaults={"unit_amount_minor": unit_amount_minor}
            )
        audit_record(
            action=AuditAction.PRODUCT_SAVED,
            principal=principal,
            object_type="product",
            object_id=str(product.id),
            payload={
                "created": created,
                "code": product.code,
                "description": product.description,
                "tax_treatment": product.tax_treatment,
                "active": product.active,
                "prices_minor": dict(
                    ProductPrice.objects.filter(product=product)
                    .order_by("currency")
                    .values_list("currency", "unit_amount_minor")
                ),
            },
        )
    return product


# --- the e-mail blind index after BLIND_INDEX_KEY changed (docs/encryption.md) ------------


DEFAULT_REINDEX_BATCH_SIZE = 500


@dataclass(frozen=True)
class BlindIndexReport:
    rows_scanned: int
    rows_updated: int
    dry_run: bool


def _reindex_batch(*, principal: SystemPrincipal, after: Any, size: int, dry_run: bool) -> tuple[Any, int, int] | None:
    """Recompute the email index of up to ``size`` customers with pk > ``after`` in one
    transaction; returns (last pk, rows scanned, rows changed), or None when done."""
    with transaction.atomic():
        queryset = Customer.objects.select_for_update(no_key=True).order_by("pk")
        if after is not None:
            queryset = queryset.filter(pk__gt=after)
        rows = list(queryset[:size])
        if not rows:
            return None
        changed = 0
        for customer in rows:
            index = blind_index(customer.email, purpose=EMAIL_INDEX_PURPOSE)
            if index == customer.email_index:
                continue
            changed += 1
            if not dry_run:
                customer.email_index = index
                customer.save(update_fields=["email_index"])
        if changed and not dry_run:
            audit_record(
                action=AuditAction.ENCRYPTION_KEY_ROTATED,
                principal=principal,
                object_type="model",
                object_id=Customer._meta.label,
                payload={"model": Customer._meta.label, "fields": ["email_index"], "rows_reindexed": changed},
            )
        return rows[-1].pk, len(rows), changed


def customer_email_index_recompute(
    *, principal: SystemPrincipal, batch_size: int = DEFAULT_REINDEX_BATCH_SIZE, dry_run: bool = False
) -> BlindIndexReport:
    """Recompute ``Customer.email_index`` from the decrypted email under the current
    ``BLIND_INDEX_KEY`` (after that key changed). Idempotent; batches commit separately.

    Lookups by email miss for customers not yet recomputed, so run it straight after
    deploying the new key (see docs/encryption.md).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    scanned = updated = 0
    after: Any = None
    with rls.acting_as(principal):
        while outcome := _reindex_batch(principal=principal, after=after, size=batch_size, dry_run=dry_run):
            after, batch_scanned, batch_updated = outcome
            scanned += batch_scanned
            updated += batch_updated
    return BlindIndexReport(rows_scanned=scanned, rows_updated=updated, dry_run=dry_run)
