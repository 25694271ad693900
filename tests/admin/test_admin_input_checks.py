"""The admin forms refuse what the services refuse, shown on the form, nothing written:
an unknown country, and a card number typed into a customer or product field."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from billing.models import Customer, Product
from tests.factories import make_customer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("system_principal")]

COUNTRY_MESSAGE = "an ISO 3166-1 alpha-2 country code such as AU"
CARD_MESSAGE = "must not contain a card number"


def _admin_client() -> Client:
    user = User.objects.create_user(username="staff-admin-checks", is_staff=True)
    user.groups.add(Group.objects.get(name="admin"))
    client = Client()
    client.force_login(user)
    return client


def _customer_form(**overrides: str) -> dict[str, str]:
    data = {
        "external_id": "o2s-admin-checks",
        "billing_country": "AU",
        "name": "Kingston Hosting Pty Ltd",
        "email": "accounts@kingston.example",
        "phone": "",
        "tax_id": "",
        "postal_address": json.dumps({"line1": "1 Channel Highway", "country": "AU"}),
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }
    data.update(overrides)
    return data


def _errors(response: object) -> dict[str, list[str]]:
    form = response.context["adminform"].form  # type: ignore[attr-defined]
    return {name: list(problems) for name, problems in form.errors.items()}


@pytest.mark.parametrize(
    ("overrides", "errors"),
    [
        ({"billing_country": "ZZ"}, {"billing_country": [COUNTRY_MESSAGE]}),
        ({"billing_country": "zz"}, {"billing_country": [COUNTRY_MESSAGE]}),
        (
            {"postal_address": json.dumps({"line1": "1 Channel Highway", "country": "ZZ"})},
            {"postal_address": [COUNTRY_MESSAGE]},
        ),
        ({"name": "Card 4242 4242 4242 4242"}, {"name": [CARD_MESSAGE]}),
        ({"postal_address": json.dumps({"line1": "5555-5555-5555-4444"})}, {"postal_address": [CARD_MESSAGE]}),
    ],
)
def test_adding_a_customer_with_a_bad_country_or_a_card_number_is_refused_on_the_form(
    overrides: dict[str, str], errors: dict[str, list[str]]
) -> None:
    client = _admin_client()
    audit_before = AuditEvent.objects.count()

    response = client.post(reverse("admin:billing_customer_add"), _customer_form(**overrides))

    assert response.status_code == 200
    assert _errors(response) == errors
    assert not Customer.objects.filter(external_id="o2s-admin-checks").exists()
    assert AuditEvent.objects.count() == audit_before


def test_changing_a_billing_country_to_zz_is_refused() -> None:
    customer = make_customer(billing_country="AU")
    client = _admin_client()
    audit_before = AuditEvent.objects.count()

    response = client.post(
        reverse("admin:billing_customer_change", args=[customer.pk]),
        _customer_form(billing_country="ZZ", name=customer.name, email=customer.email, postal_address=json.dumps(None)),
    )

    assert response.status_code == 200
    assert _errors(response) == {"billing_country": [COUNTRY_MESSAGE]}
    assert Customer.objects.get(pk=customer.pk).billing_country == "AU"
    assert AuditEvent.objects.count() == audit_before


def test_lower_case_country_is_accepted_and_upper_cased() -> None:
    client = _admin_client()

    response = client.post(reverse("admin:billing_customer_add"), _customer_form(billing_country="nz"))

    assert response.status_code == 302
    assert Customer.objects.get(external_id="o2s-admin-checks").billing_country == "NZ"


@pytest.mark.parametrize("field", ["code", "description"])
def test_adding_a_product_with_a_card_number_is_refused_on_the_form(field: str) -> None:
    client = _admin_client()
    data = {
        "code": "vps-small",
        "description": "VPS small",
        "tax_treatment": "standard",
        "active": "on",
        "prices-TOTAL_FORMS": "1",
        "prices-INITIAL_FORMS": "0",
        "prices-MIN_NUM_FORMS": "0",
        "prices-MAX_NUM_FORMS": "1000",
        "prices-0-currency": "AUD",
        "prices-0-unit_amount_minor": "1999",
        "_save": "Save",
        field: "4242424242424242",
    }
    audit_before = AuditEvent.objects.count()

    response = client.post(reverse("admin:billing_product_add"), data)

    assert response.status_code == 200
    assert _errors(response) == {field: [CARD_MESSAGE]}
    assert not Product.objects.exists()
    assert AuditEvent.objects.count() == audit_before
