"""customer_create, customer_update and customer_grant_access: validation, duplicates,
audit records without personal data, and who may act on which customer.

Encryption, blind indexes and duplicate emails are covered in tests/encryption.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from guardian.shortcuts import get_perms

from audit.actions import AuditAction
from audit.models import AuditEvent
from billing.errors import CustomerNotFoundError, DuplicateCustomerError, InvalidCustomerError
from billing.models import Customer, CustomerMembership, CustomerUserObjectPermission
from billing.selectors import customer_get, customer_ids_for_user
from billing.services import customer_create, customer_grant_access, customer_update
from paymenter.principals import CustomerPrincipal, SystemPrincipal
from tests.factories import UserFactory, make_customer

pytestmark = pytest.mark.usefixtures("db", "system_principal")

VALID: dict[str, Any] = {
    "external_id": "o2s-valid-1",
    "billing_country": "AU",
    "name": "Salamanca Hosting Pty Ltd",
    "email": "accounts@salamanca.example",
}


def _counts() -> tuple[int, int, int, int]:
    return (
        Customer.objects.count(),
        AuditEvent.objects.count(),
        CustomerMembership.objects.count(),
        CustomerUserObjectPermission.objects.count(),
    )


def _events(customer: Customer, action: AuditAction) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(object_id=str(customer.id), action=action).order_by("sequence"))


# --- customer_create -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        ({"billing_country": "Australia"}, {"billing_country"}),
        ({"billing_country": "A1"}, {"billing_country"}),
        ({"billing_country": None}, {"billing_country"}),
        ({"email": "not-an-email"}, {"email"}),
        ({"email": "   "}, {"email"}),
        ({"external_id": ""}, {"external_id"}),
        ({"external_id": "   "}, {"external_id"}),
        ({"external_id": "x" * 65}, {"external_id"}),
        ({"name": "", "email": "nope"}, {"name", "email"}),
        ({"phone": 12345}, {"phone"}),
        ({"postal_address": {"street": "1 Salamanca Place"}}, {"postal_address"}),
        ({"postal_address": {"line1": 1}}, {"postal_address"}),
        ({"postal_address": "1 Salamanca Place, Hobart"}, {"postal_address"}),
    ],
)
def test_invalid_customer_is_refused_and_writes_nothing(overrides: dict[str, Any], fields: set[str]) -> None:
    before = _counts()
    with pytest.raises(InvalidCustomerError) as caught:
        customer_create(principal=SystemPrincipal(label="test"), **{**VALID, **overrides})
    assert caught.value.code == "invalid_customer"
    assert set(caught.value.fields) == fields
    assert _counts() == before


def test_create_normalises_and_audits_without_personal_data(system_principal: SystemPrincipal) -> None:
    customer = customer_create(
        principal=system_principal,
        **{**VALID, "billing_country": "au", "external_id": "  o2s-trim  ", "name": "  Salamanca  "},
    )
    assert (customer.billing_country, customer.external_id, customer.name) == ("AU", "o2s-trim", "Salamanca")
    (event,) = _events(customer, AuditAction.CUSTOMER_CREATED)
    assert event.payload == {"external_id": "o2s-trim", "billing_country": "AU"}
    assert (event.actor_type, event.actor_id, event.customer_id) == ("system", "test", customer.id)


def test_duplicate_external_id_is_a_conflict_and_writes_nothing(system_principal: SystemPrincipal) -> None:
    existing = make_customer()
    before = _counts()
    with pytest.raises(DuplicateCustomerError) as caught:
        customer_create(principal=system_principal, **{**VALID, "external_id": existing.external_id})
    assert (caught.value.status_code, caught.value.code) == (409, "duplicate_customer")
    assert caught.value.fields == {"external_id": ["already in use"]}
    assert _counts() == before


# --- customer_update -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"nickname": "Sal"}, {"nickname"}),
        ({"email_index": "0" * 64, "external_id": "o2s-other"}, {"email_index", "external_id"}),
        ({"billing_country": "AUS"}, {"billing_country"}),
        ({"email": "not-an-email"}, {"email"}),
        ({"name": ""}, {"name"}),
        ({"postal_address": {"line1": "1 Salamanca Place", "planet": "Earth"}}, {"postal_address"}),
        ({"postal_address": ["1 Salamanca Place"]}, {"postal_address"}),
    ],
)
def test_invalid_update_is_refused_and_writes_nothing(
    system_principal: SystemPrincipal, changes: dict[str, Any], fields: set[str]
) -> None:
    customer = make_customer(billing_country="AU")
    before = _counts()
    with pytest.raises(InvalidCustomerError) as caught:
        customer_update(principal=system_principal, customer_id=customer.id, changes=changes)
    assert set(caught.value.fields) == fields
    assert _counts() == before
    stored = Customer.objects.get(pk=customer.pk)
    assert (stored.billing_country, stored.email, stored.name, stored.updated_at) == (
        "AU",
        customer.email,
        customer.name,
        customer.updated_at,
    )


def test_update_audits_the_changed_field_names_but_no_personal_data(system_principal: SystemPrincipal) -> None:
    customer = make_customer(billing_country="AU")
    old_email, old_name = customer.email, customer.name
    changes: dict[str, Any] = {
        "name": "Battery Point Cloud Pty Ltd",
        "email": "ledger@batterypoint.example",
        "phone": "+61 3 6299 1234",
        "tax_id": "99 888 777 666",
        "postal_address": {"line1": "7 Kelly Street", "city": "Battery Point", "postcode": "7004"},
        "billing_country": "NZ",
    }
    updated = customer_update(principal=system_principal, customer_id=customer.id, changes=changes)

    stored = Customer.objects.get(pk=customer.pk)
    assert (stored.name, stored.email, stored.billing_country) == (changes["name"], changes["email"], "NZ")
    assert stored.email_index != customer.email_index
    assert updated.updated_at > customer.updated_at
    (event,) = _events(customer, AuditAction.CUSTOMER_UPDATED)
    assert event.payload == {
        "changed_fields": ["billing_country", "email", "name", "phone", "postal_address", "tax_id"],
        "before": {"billing_country": "AU"},
        "after": {"billing_country": "NZ"},
    }
    text = json.dumps(event.payload)
    for secret in (changes["name"], changes["email"], changes["phone"], changes["tax_id"], old_email, old_name):
        assert secret not in text
    assert "Kelly" not in text
    assert "batterypoint" not in text


def test_updating_nothing_writes_no_audit_event(system_principal: SystemPrincipal) -> None:
    customer = make_customer(billing_country="AU")
    before = _counts()
    customer_update(principal=system_principal, customer_id=customer.id, changes={})
    customer_update(
        principal=system_principal,
        customer_id=customer.id,
        changes={"name": customer.name, "email": customer.email, "billing_country": "au"},
    )
    assert _counts() == before
    assert Customer.objects.get(pk=customer.pk).updated_at == customer.updated_at


def test_customer_principal_cannot_update_another_customer(system_principal: SystemPrincipal) -> None:
    own, other = make_customer(), make_customer(billing_country="AU")
    before = _counts()
    with pytest.raises(CustomerNotFoundError) as caught:
        customer_update(
            principal=CustomerPrincipal(user_id=10_000, customer_ids=frozenset({own.id})),
            customer_id=other.id,
            changes={"billing_country": "NZ", "name": "Hijacked"},
        )
    assert caught.value.status_code == 404
    assert _counts() == before
    stored = Customer.objects.get(pk=other.pk)
    assert (stored.billing_country, stored.name) == ("AU", other.name)


def test_unknown_customer_id_is_not_found(system_principal: SystemPrincipal) -> None:
    before = _counts()
    with pytest.raises(CustomerNotFoundError):
        customer_update(principal=system_principal, customer_id=uuid.uuid4(), changes={"name": "X"})
    assert _counts() == before


def test_malformed_customer_id_is_not_found(system_principal: SystemPrincipal) -> None:
    with pytest.raises(CustomerNotFoundError):
        customer_update(principal=system_principal, customer_id="not-a-uuid", changes={"name": "X"})


# --- customer_grant_access -------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_fields", "permissions", "field"),
    [
        ({"is_staff": True}, ("view_customer_invoices",), "user"),
        ({}, ("view_customer_pii",), "permissions"),
        ({}, ("view_customer_invoices", "delete_everything"), "permissions"),
        ({}, (), "permissions"),
    ],
)
def test_grant_access_refuses_staff_and_unknown_permissions(
    system_principal: SystemPrincipal, user_fields: dict[str, Any], permissions: tuple[str, ...], field: str
) -> None:
    customer = make_customer()
    user = UserFactory.create(**user_fields)
    before = _counts()
    with pytest.raises(InvalidCustomerError) as caught:
        customer_grant_access(principal=system_principal, customer_id=customer.id, user=user, permissions=permissions)
    assert set(caught.value.fields) == {field}
    assert _counts() == before
    assert get_perms(user, customer) == []


def test_grant_access_creates_membership_and_object_permissions_once(system_principal: SystemPrincipal) -> None:
    customer, unrelated = make_customer(), make_customer()
    user = UserFactory.create()

    def grant() -> CustomerMembership:
        return customer_grant_access(principal=system_principal, customer_id=customer.id, user=user)

    first = grant()
    second = grant()

    assert first.pk == second.pk
    assert list(CustomerMembership.objects.filter(user=user).values_list("customer_id", flat=True)) == [customer.id]
    assert sorted(get_perms(user, customer)) == ["pay_customer_invoices", "view_customer_invoices"]
    assert user.has_perm("billing.view_customer_invoices", customer)
    assert not user.has_perm("billing.view_customer_pii", customer)
    assert get_perms(user, unrelated) == []
    events = _events(customer, AuditAction.CUSTOMER_ACCESS_GRANTED)
    assert [event.payload for event in events] == [
        {"user_id": user.pk, "permissions": ["pay_customer_invoices", "view_customer_invoices"]}
    ] * 2


def test_customer_ids_for_user_are_exactly_the_members_customers(system_principal: SystemPrincipal) -> None:
    a, b, c = make_customer(), make_customer(), make_customer()
    member, neighbour, outsider = UserFactory.create(), UserFactory.create(), UserFactory.create()
    for customer in (a, b):
        customer_grant_access(principal=system_principal, customer_id=customer.id, user=member)
    customer_grant_access(
        principal=system_principal, customer_id=c.id, user=neighbour, permissions=["view_customer_invoices"]
    )

    assert customer_ids_for_user(user_id=member.pk) == frozenset({a.id, b.id})
    assert customer_ids_for_user(user_id=neighbour.pk) == frozenset({c.id})
    assert customer_ids_for_user(user_id=outsider.pk) == frozenset()
    # the principal built from it reaches exactly those customers
    principal = CustomerPrincipal(user_id=member.pk, customer_ids=customer_ids_for_user(user_id=member.pk))
    assert customer_get(principal=principal, customer_id=b.id) == b
    with pytest.raises(CustomerNotFoundError):
        customer_get(principal=principal, customer_id=c.id)
