"""``load_demo_data``: the roles, the data set, logins printed once, idempotent."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.test import Client

from audit.models import AuditEvent
from billing.models import Customer, CustomerMembership
from gateways.models import Payment
from invoices.models import Invoice
from paymenter.principals import SystemPrincipal

pytestmark = pytest.mark.django_db

PREFIX = "demo-"
LOGIN_LINE = re.compile(r"^\s+(?P<username>\S+)\s+(?P<password>[A-Za-z0-9_-]{16})\s+(?P<role>.+)$")


def run() -> str:
    out = io.StringIO()
    call_command("load_demo_data", stdout=out)
    return out.getvalue()


def printed_logins(output: str) -> dict[str, tuple[str, str]]:
    return {
        match["username"]: (match["password"], match["role"])
        for match in map(LOGIN_LINE.match, output.splitlines())
        if match
    }


def test_first_run_creates_the_data_set_and_prints_each_login_once(system_principal: SystemPrincipal) -> None:
    output = run()

    logins = printed_logins(output)
    assert {name: role for name, (_, role) in logins.items()} == {
        "admin": "staff: admin",
        "billing": "staff: billing",
        "support": "staff: support",
        "customer-au": "customer demo-au-1",
        "customer-us": "customer demo-us-1",
    }
    for username, (password, _) in logins.items():
        assert User.objects.get(username=username).check_password(password), username
    for role in ("admin", "billing", "support"):
        staff = User.objects.get(username=role)
        assert (staff.is_staff, staff.is_superuser) == (True, False)
        assert list(staff.groups.values_list("name", flat=True)) == [role]
    customers = Customer.objects.filter(external_id__startswith=PREFIX)
    assert sorted(customers.values_list("external_id", "billing_country")) == [
        ("demo-au-1", "AU"),
        ("demo-us-1", "US"),
    ]
    for customer, portal in zip(customers.order_by("external_id"), ("customer-au", "customer-us"), strict=True):
        member = User.objects.get(username=portal)
        assert member.is_staff is False
        assert CustomerMembership.objects.filter(customer=customer, user=member).exists()
        assert member.has_perm("billing.view_customer_invoices", customer)
    invoices = Invoice.objects.filter(customer__external_id__startswith=PREFIX)
    assert sorted(invoices.values_list("customer__external_id", "currency", "status")) == [
        ("demo-au-1", "AUD", "draft"),
        ("demo-au-1", "AUD", "open"),
        ("demo-au-1", "AUD", "paid"),
        ("demo-us-1", "USD", "open"),
        ("demo-us-1", "USD", "void"),
    ]
    au_open = invoices.get(customer__external_id="demo-au-1", status="open")
    us_open = invoices.get(customer__external_id="demo-us-1", status="open")
    assert au_open.tax_minor == au_open.subtotal_minor // 10  # GST 10%
    assert us_open.tax_minor == 0  # GST-free export
    paid_invoice = invoices.get(status="paid")
    assert (paid_invoice.amount_paid_minor, paid_invoice.amount_due_minor) == (paid_invoice.total_minor, 0)
    paid = AuditEvent.objects.get(action="invoice.paid")
    assert paid.object_id == str(paid_invoice.id)
    assert paid.payload["number"] == paid_invoice.number
    assert paid.payload["transaction_id"] == f"demo-{paid_invoice.number}"
    assert (paid.payload["gateway"], paid.payload["method"]) == ("bank_transfer", "bank_transfer")
    assert (paid.payload["amount_minor"], paid.payload["currency"]) == (paid_invoice.total_minor, "AUD")
    assert (paid.payload["status"], paid.payload["held_reason"]) == ("applied", "")
    assert "payment_reference" not in paid.payload
    assert paid.actor_id == "command:load_demo_data"
    payment = Payment.objects.get(invoice=paid_invoice)
    assert str(payment.id) == paid.payload["payment_id"]
    assert (payment.gateway, payment.transaction_id, payment.status) == (
        "bank_transfer",
        f"demo-{paid_invoice.number}",
        "applied",
    )


def test_second_run_creates_nothing_and_prints_no_password(system_principal: SystemPrincipal) -> None:
    first = run()
    passwords = [password for password, _ in printed_logins(first).values()]
    counts = (
        Customer.objects.filter(external_id__startswith=PREFIX).count(),
        Invoice.objects.count(),
        User.objects.count(),
        AuditEvent.objects.count(),
    )

    second = run()

    assert "already exists" in second
    assert printed_logins(second) == {}
    assert not any(password in second for password in passwords)
    assert counts == (
        Customer.objects.filter(external_id__startswith=PREFIX).count(),
        Invoice.objects.count(),
        User.objects.count(),
        AuditEvent.objects.count(),
    )
    assert counts[:2] == (2, 5)


def group_permissions(name: str) -> set[str]:
    group = Group.objects.get(name=name)
    return {
        f"{app}.{codename}" for app, codename in group.permissions.values_list("content_type__app_label", "codename")
    }


GATEWAYS_VIEW = {  # gateways/0002_row_level_security_and_staff_grants: the ledger and the inbox
    "gateways.view_payment",
    "gateways.view_paymentattempt",
    "gateways.view_webhookevent",
    "gateways.view_gatewaycustomer",
}
GATEWAYS_ACT = {"gateways.resolve_held_payment", "gateways.reprocess_webhookevent"}
MONEY_BACK_VIEW = {  # gateways/0004 and invoices/0008: refunds, disputes, warnings, summaries, credit notes
    "gateways.view_refund",
    "gateways.view_dispute",
    "gateways.view_fraudwarning",
    "gateways.view_dailysummary",
}
CREDIT_NOTES_VIEW = {"invoices.view_creditnote", "invoices.view_creditnoteline"}
FRAUD_VIEW = {"fraud.view_ruleconfig", "fraud.view_assessment", "fraud.view_customerriskflag"}  # fraud/0002
BANK_STATEMENTS = {  # gateways/0004: payers' names, so billing and admin only
    "gateways.view_bankstatementimport",
    "gateways.add_bankstatementimport",
    "gateways.view_bankstatementline",
    "gateways.change_bankstatementline",
}


def test_staff_groups_have_the_role_table_permissions() -> None:
    admin, billing, support = (group_permissions(name) for name in ("admin", "billing", "support"))

    assert {"invoices.record_payment", "invoices.process_refund", "billing.view_customer_pii"} <= billing
    assert support == {
        "billing.view_customer",
        "invoices.view_invoice",
        "invoices.view_invoiceline",
        "billing.view_product",  # billing/0006_staff_groups_products: the catalogue, read-only
        "billing.view_productprice",
        *GATEWAYS_VIEW,  # read-only
        *MONEY_BACK_VIEW,
        *CREDIT_NOTES_VIEW,
        *FRAUD_VIEW,
    }
    # fraud/0002: the admin group changes rule configuration; billing and admin clear risk flags
    assert {p for p in admin if p.startswith("fraud.")} == FRAUD_VIEW | {
        "fraud.change_ruleconfig",
        "fraud.change_customerriskflag",
    }
    assert {p for p in billing if p.startswith("fraud.")} == FRAUD_VIEW | {"fraud.change_customerriskflag"}
    # billing and admin see the ledger and the inbox, resolve held payments and re-process
    # webhook events; nobody may add, change or delete ledger rows in the admin
    for group in (admin, billing):
        assert {p for p in group if p.startswith("gateways.")} == (
            GATEWAYS_VIEW | GATEWAYS_ACT | MONEY_BACK_VIEW | BANK_STATEMENTS | {"gateways.review_payment"}  # 0006
        )
        assert group >= CREDIT_NOTES_VIEW
    assert billing < admin
    assert {
        "invoices.change_invoice",
        "invoices.add_taxrate",
        "billing.add_customer",
        "billing.change_customer",
        "auth.change_user",
    } <= admin
    # voiding in the admin needs change_invoice: only the admin group has it
    assert "invoices.change_invoice" not in billing


KEY_LINE = re.compile(r"Authorization: Bearer (?P<key>pmk_\S+)")


def test_demo_api_key_creates_invoices_from_the_demo_catalogue_and_is_shown_once(
    system_principal: SystemPrincipal, client: Client
) -> None:
    first = run()
    match = KEY_LINE.search(first)
    assert match is not None
    key = match["key"]
    assert KEY_LINE.search(run()) is None  # never printed again
    au = Customer.objects.get(external_id="demo-au-1")

    response = client.post(
        "/api/v1/invoices/",
        {"customer": str(au.id), "currency": "AUD", "lines": [{"product_code": "vps-small", "quantity": 2}]},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
        REMOTE_ADDR="127.0.0.1",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["subtotal_minor"], body["tax_minor"], body["total_minor"]) == (4000, 400, 4400)
    elsewhere = client.get("/api/v1/invoices/", HTTP_AUTHORIZATION=f"Bearer {key}", REMOTE_ADDR="10.0.0.1")
    assert elsewhere.status_code == 403
