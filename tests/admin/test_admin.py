"""Staff admin: who sees personal data, who may change what, and that nothing financial
is deleted or edited in place. Requests go through the real middleware (staff principal)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.models import AuditEvent
from billing.admin import CustomerAdmin
from billing.models import Customer, Product
from billing.selectors import mask_pii
from invoices.admin import InvoiceAdmin, TaxRateAdmin
from invoices.models import Invoice, InvoiceNumberSequence, InvoiceStatus, TaxRate
from paymenter.principals import SystemPrincipal
from tests.factories import make_customer, make_invoice

pytestmark = pytest.mark.django_db

NAME = "Wonderland Hosting Pty Ltd"
EMAIL = "alice.liddell@wonderland.example"
PHONE = "+61 3 6200 1234"
TAX_ID = "51 824 753 556"


def staff_client(role: str) -> tuple[Client, User]:
    user = User.objects.create_user(username=f"staff-{role}", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client, user


def customer_url(name: str, customer: Customer) -> str:
    return reverse(f"admin:billing_customer_{name}", args=[customer.pk])


def invoice_url(name: str, invoice: Invoice) -> str:
    return reverse(f"admin:invoices_invoice_{name}", args=[invoice.pk])


INVOICE_CHANGELIST = reverse("admin:invoices_invoice_changelist")
CUSTOMER_CHANGELIST = reverse("admin:billing_customer_changelist")


@pytest.fixture
def customer(system_principal: SystemPrincipal) -> Customer:
    return make_customer(name=NAME, email=EMAIL, phone=PHONE, tax_id=TAX_ID)


def count_events(action: str, object_id: object) -> int:
    return AuditEvent.objects.filter(action=action, object_id=str(object_id)).count()


# --- personal data ----------------------------------------------------------------------


def test_support_sees_personal_data_masked_on_list_and_detail(customer: Customer) -> None:
    client, _ = staff_client("support")

    for url in (CUSTOMER_CHANGELIST, customer_url("change", customer)):
        response = client.get(url)
        content = response.content.decode()

        assert response.status_code == 200
        assert customer.external_id in content
        assert mask_pii(EMAIL) in content  # a***@w***
        assert mask_pii(NAME) in content
        for plaintext in (NAME, EMAIL, "alice.liddell", "wonderland.example", PHONE, TAX_ID):
            assert plaintext not in content, (url, plaintext)


def test_billing_sees_personal_data_in_clear(customer: Customer) -> None:
    client, _ = staff_client("billing")

    for url in (CUSTOMER_CHANGELIST, customer_url("change", customer)):
        response = client.get(url)
        content = response.content.decode()

        assert response.status_code == 200
        assert NAME in content
        assert EMAIL in content


def test_support_sees_invoice_buyer_details_masked(customer: Customer, system_principal: SystemPrincipal) -> None:
    invoice = make_invoice(customer)
    client, _ = staff_client("support")

    content = client.get(invoice_url("change", invoice)).content.decode()

    assert invoice.number is not None
    assert invoice.number in content
    assert mask_pii(EMAIL) in content
    assert EMAIL not in content
    assert NAME not in content


# --- customers: who may change / delete -------------------------------------------------


def customer_form(**overrides: str) -> dict[str, str]:
    data = {
        "billing_country": "AU",
        "name": NAME,
        "email": EMAIL,
        "phone": PHONE,
        "tax_id": TAX_ID,
        "postal_address": json.dumps({"line1": "1 Rabbit Hole", "city": "Hobart"}),
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize("role", ["support", "billing"])
def test_support_and_billing_cannot_change_a_customer(
    role: str, customer: Customer, system_principal: SystemPrincipal
) -> None:
    client, _ = staff_client(role)

    response = client.post(customer_url("change", customer), customer_form(name="Mad Hatter Ltd"))

    assert response.status_code == 403
    assert Customer.objects.get(pk=customer.pk).name == NAME
    assert count_events("customer.updated", customer.pk) == 0


@pytest.mark.parametrize("role", ["support", "billing", "admin"])
def test_nobody_deletes_customers_or_invoices(role: str, customer: Customer, system_principal: SystemPrincipal) -> None:
    invoice = make_invoice(customer)
    client, _ = staff_client(role)

    assert client.get(customer_url("delete", customer)).status_code == 403
    assert client.post(customer_url("delete", customer), {"post": "yes"}).status_code == 403
    assert client.get(invoice_url("delete", invoice)).status_code == 403
    assert client.post(invoice_url("delete", invoice), {"post": "yes"}).status_code == 403
    # the bulk delete action is not offered either
    assert "delete_selected" not in client.get(CUSTOMER_CHANGELIST).content.decode()
    assert "delete_selected" not in client.get(INVOICE_CHANGELIST).content.decode()
    assert Customer.objects.filter(pk=customer.pk).exists()
    assert Invoice.objects.filter(pk=invoice.pk).exists()


def test_admin_changes_a_customer_through_the_service(customer: Customer, system_principal: SystemPrincipal) -> None:
    client, user = staff_client("admin")
    form_page = client.get(customer_url("change", customer)).content.decode()
    assert f'name="email" value="{EMAIL}"' in form_page
    assert 'name="external_id"' not in form_page  # O2S's key is fixed once created

    response = client.post(
        customer_url("change", customer),
        customer_form(name="Mad Hatter Ltd", phone="", postal_address=json.dumps(customer.postal_address)),
    )

    assert response.status_code == 302
    stored = Customer.objects.get(pk=customer.pk)
    assert stored.name == "Mad Hatter Ltd"
    assert stored.phone is None
    event = AuditEvent.objects.get(action="customer.updated", object_id=str(customer.pk))
    assert (event.actor_type, event.actor_id) == ("staff", str(user.pk))
    assert event.payload["changed_fields"] == ["name", "phone"]


def test_admin_adds_a_customer_through_the_service(system_principal: SystemPrincipal) -> None:
    client, user = staff_client("admin")

    response = client.post(
        reverse("admin:billing_customer_add"),
        customer_form(external_id="o2s-admin-added", billing_country="us", email="new@cheshire.example"),
    )

    assert response.status_code == 302
    created = Customer.objects.get(external_id="o2s-admin-added")
    assert response["Location"] == CUSTOMER_CHANGELIST
    # the admin's own log names the row the service created
    assert LogEntry.objects.get(object_id=str(created.pk)).object_repr == "Customer o2s-admin-added"
    assert (created.billing_country, created.email) == ("US", "new@cheshire.example")
    event = AuditEvent.objects.get(action="customer.created", object_id=str(created.pk))
    assert (event.actor_type, event.actor_id) == ("staff", str(user.pk))


def test_a_service_refusal_shows_as_a_form_error_not_a_500(
    customer: Customer, system_principal: SystemPrincipal
) -> None:
    client, _ = staff_client("admin")

    response = client.post(
        reverse("admin:billing_customer_add"),
        customer_form(external_id="o2s-duplicate-email"),  # EMAIL is taken
    )

    assert response.status_code == 200
    assert "already in use" in response.content.decode()
    assert not Customer.objects.filter(external_id="o2s-duplicate-email").exists()
    assert Customer.objects.count() == 1


# --- invoices ------------------------------------------------------------------------


def test_issued_invoice_detail_has_no_editable_money_inputs(
    customer: Customer, system_principal: SystemPrincipal
) -> None:
    invoice = make_invoice(customer, lines=[("VPS", 1, 2000)])
    client, _ = staff_client("admin")

    response = client.get(invoice_url("change", invoice))
    content = response.content.decode()

    assert response.status_code == 200
    for field in ("total_minor", "subtotal_minor", "tax_minor", "amount_paid_minor", "status", "unit_amount_minor"):
        assert f'name="{field}"' not in content
        assert f'name="lines-0-{field}"' not in content
    assert 'type="submit" value="Save"' not in content
    assert client.post(invoice_url("change", invoice), {"total_minor": "1"}).status_code == 403
    assert Invoice.objects.get(pk=invoice.pk).total_minor == 2200


def test_changelist_shows_formatted_money(customer: Customer, system_principal: SystemPrincipal) -> None:
    make_invoice(customer, lines=[("Dedicated server", 1, 123456)])
    client, _ = staff_client("billing")

    content = client.get(INVOICE_CHANGELIST).content.decode()

    assert "AUD 1,358.02" in content  # total and amount due (GST 10% on 1,234.56)
    assert customer.external_id in content


def void_action(client: Client, *invoices: Invoice) -> Any:
    return client.post(
        INVOICE_CHANGELIST,
        {"action": "void_selected", "_selected_action": [str(invoice.pk) for invoice in invoices], "index": "0"},
    )


def test_admin_voids_invoices_through_the_service_with_audit(
    customer: Customer, system_principal: SystemPrincipal
) -> None:
    open_invoice = make_invoice(customer)
    client, user = staff_client("admin")

    response = void_action(client, open_invoice)

    assert response.status_code == 302
    assert Invoice.objects.get(pk=open_invoice.pk).status == InvoiceStatus.VOID
    event = AuditEvent.objects.get(action="invoice.voided", object_id=str(open_invoice.pk))
    assert (event.actor_type, event.actor_id) == ("staff", str(user.pk))


def test_void_refusal_is_reported_and_changes_nothing(customer: Customer, system_principal: SystemPrincipal) -> None:
    invoice = make_invoice(customer)
    client, _ = staff_client("admin")
    void_action(client, invoice)

    response = void_action(client, invoice)  # already void

    assert response.status_code == 302
    messages = [str(m) for m in response.wsgi_request._messages]
    assert any("not changed: An invoice that is void cannot be voided" in m for m in messages), messages
    assert count_events("invoice.voided", invoice.pk) == 1


@pytest.mark.parametrize("role", ["billing", "support"])
def test_void_action_is_unavailable_without_change_invoice(
    role: str, customer: Customer, system_principal: SystemPrincipal
) -> None:
    invoice = make_invoice(customer)
    client, _ = staff_client(role)

    assert "void_selected" not in client.get(INVOICE_CHANGELIST).content.decode()
    void_action(client, invoice)

    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.OPEN
    assert count_events("invoice.voided", invoice.pk) == 0


def test_checksum_column_flags_a_mismatch(customer: Customer, system_principal: SystemPrincipal, settings: Any) -> None:
    make_invoice(customer)
    client, _ = staff_client("support")

    intact = client.get(INVOICE_CHANGELIST).content.decode()
    settings.INVOICE_CHECKSUM_KEYS = "dev1:" + base64.b64encode(bytes(range(32, 64))).decode()
    tampered = client.get(INVOICE_CHANGELIST).content.decode()
    only_failed = client.get(INVOICE_CHANGELIST, {"checksum": "failed"}).content.decode()

    assert 'icon-yes.svg" alt="True"' in intact
    assert 'alt="False"' not in intact
    assert 'icon-no.svg" alt="False"' in tampered
    assert 'icon-yes.svg" alt="True"' not in tampered
    assert 'icon-no.svg" alt="False"' in only_failed


def test_invoice_changelist_query_count_does_not_grow_with_rows(
    customer: Customer, system_principal: SystemPrincipal
) -> None:
    client, _ = staff_client("admin")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(INVOICE_CHANGELIST).status_code == 200
        return len(captured.captured_queries)

    for _ in range(2):
        make_invoice(customer)
    with_two = queries()
    other = make_customer()
    for index in range(4):
        make_invoice(other if index % 2 else customer, issue=bool(index % 3))

    assert Invoice.objects.count() == 6
    assert queries() == with_two


def test_customer_changelist_query_count_does_not_grow_with_rows(system_principal: SystemPrincipal) -> None:
    client, _ = staff_client("support")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(CUSTOMER_CHANGELIST).status_code == 200
        return len(captured.captured_queries)

    make_customer()
    with_one = queries()
    for _ in range(4):
        make_customer()

    assert queries() == with_one


# --- tax rates and hidden models -------------------------------------------------------


def test_admin_adds_a_tax_rate_but_nobody_edits_or_deletes_one(system_principal: SystemPrincipal) -> None:
    client, user = staff_client("admin")
    existing = TaxRate.objects.get(code="GST", country="AU")

    response = client.post(
        reverse("admin:invoices_taxrate_add"),
        {"code": "GST", "country": "AU", "rate": "0.1250", "effective_from": "2031-07-01", "description": "test"},
    )
    changed = client.post(
        reverse("admin:invoices_taxrate_change", args=[existing.pk]),
        {"code": "GST", "country": "AU", "rate": "0.2000", "effective_from": "2000-07-01"},
    )

    assert response.status_code == 302
    added = TaxRate.objects.get(effective_from="2031-07-01", rate="0.1250")
    event = AuditEvent.objects.get(action="tax_rate.created", object_id=str(added.pk))
    assert (event.actor_type, event.actor_id) == ("staff", str(user.pk))
    assert event.payload == {
        "code": "GST",
        "country": "AU",
        "rate": "0.1250",
        "effective_from": "2031-07-01",
        "effective_to": None,
    }
    assert changed.status_code == 403
    assert TaxRate.objects.get(pk=existing.pk).rate == existing.rate
    assert client.get(reverse("admin:invoices_taxrate_delete", args=[existing.pk])).status_code == 403


def test_billing_cannot_add_tax_rates(system_principal: SystemPrincipal) -> None:
    client, _ = staff_client("billing")
    before = AuditEvent.objects.count()

    refused = client.post(
        reverse("admin:invoices_taxrate_add"),
        {"code": "GST", "country": "AU", "rate": "0.5000", "effective_from": "2031-07-01"},
    )

    assert refused.status_code == 403
    assert not TaxRate.objects.filter(effective_from="2031-07-01").exists()
    assert AuditEvent.objects.count() == before
    assert client.get(reverse("admin:invoices_taxrate_add")).status_code == 403
    assert client.get(reverse("admin:invoices_taxrate_changelist")).status_code == 200


@pytest.mark.parametrize("role", ["admin", "billing", "support"])
def test_every_role_reaches_the_admin_index(role: str, customer: Customer) -> None:
    client, _ = staff_client(role)

    response = client.get(reverse("admin:index"))

    assert response.status_code == 200
    assert CUSTOMER_CHANGELIST in response.content.decode()
    assert INVOICE_CHANGELIST in response.content.decode()


def test_registrations() -> None:
    assert isinstance(admin.site._registry[Customer], CustomerAdmin)
    assert isinstance(admin.site._registry[Invoice], InvoiceAdmin)
    assert isinstance(admin.site._registry[TaxRate], TaxRateAdmin)
    assert InvoiceNumberSequence not in admin.site._registry
    for model_admin in admin.site._registry.values():  # Django's system checks of each admin
        assert model_admin.check() == [], model_admin


def test_catalogue_changes_are_audited_with_their_prices(system_principal: SystemPrincipal) -> None:
    client, user = staff_client("admin")
    prefix = "prices"
    form = {
        "code": "vps-xl",
        "description": "VPS extra large",
        "tax_treatment": "standard",
        "active": "on",
        f"{prefix}-TOTAL_FORMS": "2",
        f"{prefix}-INITIAL_FORMS": "0",
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
        f"{prefix}-0-currency": "AUD",
        f"{prefix}-0-unit_amount_minor": "9000",
        f"{prefix}-1-currency": "USD",
        f"{prefix}-1-unit_amount_minor": "6000",
    }

    response = client.post(reverse("admin:billing_product_add"), form)

    assert response.status_code == 302, response.content.decode()[:2000]
    product = Product.objects.get(code="vps-xl")
    event = AuditEvent.objects.get(action="product.saved", object_id=str(product.id))
    assert (event.actor_type, event.actor_id) == ("staff", str(user.pk))
    assert event.payload["created"] is True
    assert event.payload["prices_minor"] == {"AUD": 9000, "USD": 6000}


def test_admin_marks_an_invoice_uncollectible(customer: Customer, system_principal: SystemPrincipal) -> None:
    invoice = make_invoice(customer)
    client, user = staff_client("admin")

    response = client.post(
        reverse("admin:invoices_invoice_changelist"),
        {"action": "mark_uncollectible_selected", "_selected_action": [str(invoice.pk)]},
    )

    assert response.status_code == 302
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.UNCOLLECTIBLE
    event = AuditEvent.objects.get(action="invoice.marked_uncollectible", object_id=str(invoice.pk))
    assert (event.actor_type, event.actor_id) == ("staff", str(user.pk))
