"""The customer portal: a logged-in customer's invoice list and invoice pages, scoped to
the customers they are granted on (selectors + row-level security underneath)."""

from __future__ import annotations

import base64
import re
import uuid
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.db import connection
from django.shortcuts import resolve_url
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.models import Customer
from billing.services import customer_grant_access
from invoices.models import Invoice, InvoiceChecksumMismatch
from invoices.pay_links import pay_link_token
from invoices.services import invoice_void
from paymenter import rls
from paymenter.principals import SystemPrincipal
from tests.factories import FACTORY_PRINCIPAL, UserFactory, make_customer, make_invoice, make_member, make_paid_invoice

pytestmark = pytest.mark.django_db
READER = SystemPrincipal(label="test:portal")
ROW = re.compile(r'<a href="/invoices/(?P<id>[0-9a-f-]{36})/">')


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _listed(response: Any) -> list[str]:
    return ROW.findall(response.content.decode())


def _without_csrf(response: Any) -> str:
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode())


def _invoices(customer: Customer, count: int) -> list[Invoice]:
    return [make_invoice(customer) for _ in range(count)]


def test_anonymous_visitors_are_sent_to_log_in() -> None:
    login = resolve_url(django_settings.LOGIN_URL)  # allauth's login, or whatever it becomes
    invoice = make_invoice(make_customer())
    for path in (
        reverse("portal:home"),
        reverse("portal:invoice-list"),
        reverse("portal:invoice-detail", kwargs={"invoice_id": invoice.id}),
    ):
        response = Client().get(path)
        assert response.status_code == 302
        assert response["Location"].startswith(login + "?next=")
    assert Client().get(reverse("portal:home"))["Location"].endswith("next=/invoices/")


def test_home_sends_a_customer_to_their_invoices_and_staff_to_the_admin() -> None:
    member = make_member(make_customer())
    assert _client(member).get(reverse("portal:home"))["Location"] == reverse("portal:invoice-list")
    staff = UserFactory.create(is_staff=True)
    assert _client(staff).get(reverse("portal:home"))["Location"] == reverse("admin:index")
    assert _client(staff).get(reverse("portal:invoice-list"))["Location"] == reverse("admin:index")


def test_the_list_shows_only_the_customers_the_user_is_granted_on() -> None:
    mine, theirs = make_customer(), make_customer()
    own, other = _invoices(mine, 2), _invoices(theirs, 2)
    member = make_member(mine)
    response = _client(member).get(reverse("portal:invoice-list"))
    assert response.status_code == 200
    assert sorted(_listed(response)) == sorted(str(invoice.id) for invoice in own)
    body = response.content.decode()
    assert all(str(invoice.number) not in body for invoice in other)

    both = make_member(mine)
    # granted on the second customer as well
    customer_grant_access(principal=FACTORY_PRINCIPAL, customer_id=theirs.id, user=both)
    listed = _listed(_client(both).get(reverse("portal:invoice-list")))
    assert sorted(listed) == sorted(str(invoice.id) for invoice in own + other)


def test_the_list_is_newest_first_and_never_shows_drafts() -> None:
    customer = make_customer()
    first, second = make_invoice(customer), make_invoice(customer)
    draft = make_invoice(customer, issue=False)
    assert first.issue_date == second.issue_date  # same day: the later number first
    client = _client(make_member(customer))
    assert _listed(client.get(reverse("portal:invoice-list"))) == [str(second.id), str(first.id)]
    for status in ("draft", "no-such-status"):  # ignored: the whole list, never drafts
        response = client.get(reverse("portal:invoice-list"), {"status": status})
        assert response.status_code == 200
        assert str(draft.id) not in _listed(response)
        assert len(_listed(response)) == 2
    detail = client.get(reverse("portal:invoice-detail", kwargs={"invoice_id": draft.id}))
    assert detail.status_code == 404


def test_the_status_filter() -> None:
    customer = make_customer()
    open_invoice = make_invoice(customer)
    paid = make_paid_invoice(customer)
    void = make_invoice(customer)
    invoice_void(principal=READER, invoice_id=void.id, reason="test")
    client = _client(make_member(customer))
    for status, expected in (("open", open_invoice), ("paid", paid), ("void", void)):
        response = client.get(reverse("portal:invoice-list"), {"status": status})
        assert _listed(response) == [str(expected.id)], status
        assert f'<option value="{status}" selected>' in response.content.decode()
    assert 'id="no-invoices"' in client.get(reverse("portal:invoice-list"), {"status": "refunded"}).content.decode()


def test_the_list_is_paginated_25_a_page() -> None:
    customer = make_customer()
    invoices = _invoices(customer, 27)
    client = _client(make_member(customer))
    first = client.get(reverse("portal:invoice-list"))
    second = client.get(reverse("portal:invoice-list"), {"page": 2})
    assert len(_listed(first)) == 25
    assert len(_listed(second)) == 2
    assert sorted(_listed(first) + _listed(second)) == sorted(str(invoice.id) for invoice in invoices)
    assert 'rel="next" href="?page=2"' in first.content.decode()
    assert len(_listed(client.get(reverse("portal:invoice-list"), {"page": "nonsense"}))) == 25


def _list_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("portal:invoice-list")).status_code == 200
    return len(queries)


def test_the_list_takes_the_same_number_of_queries_for_1_or_30_invoices() -> None:
    one, many = make_customer(), make_customer()
    make_invoice(one)
    _invoices(many, 30)
    few_queries = _list_queries(_client(make_member(one)))
    many_queries = _list_queries(_client(make_member(many)))
    assert few_queries == many_queries


def test_the_detail_page_shows_the_invoice_and_what_is_due() -> None:
    customer = make_customer()
    invoice = make_invoice(customer, lines=[("VPS small, 1 month", 1, 2000), ("Backup storage 50 GB", 2, 450)])
    response = _client(make_member(customer)).get(reverse("portal:invoice-detail", kwargs={"invoice_id": invoice.id}))
    assert response.status_code == 200
    body = response.content.decode()
    assert str(invoice.number) in body
    for text in ("VPS small, 1 month", "Backup storage 50 GB", invoice.seller_details["name"], customer.name):
        assert text in body
    assert "no-store" in response["Cache-Control"]
    assert 'id="amount-due">AUD ' in body
    assert "No payments yet." in body


def test_the_detail_page_lists_payments() -> None:
    customer = make_customer()
    paid = make_paid_invoice(customer)
    body = _client(make_member(customer)).get(reverse("portal:invoice-detail", kwargs={"invoice_id": paid.id}))
    text = body.content.decode()
    assert 'id="invoice-paid"' in text
    assert "Received" in text
    assert "pay-by-card" not in text


def test_another_customers_invoice_and_a_missing_one_are_the_same_404() -> None:
    mine, theirs = make_customer(), make_customer()
    other = make_invoice(theirs)
    client = _client(make_member(mine))
    foreign = client.get(reverse("portal:invoice-detail", kwargs={"invoice_id": other.id}))
    missing = client.get(reverse("portal:invoice-detail", kwargs={"invoice_id": uuid.uuid4()}))
    assert foreign.status_code == missing.status_code == 404
    assert _without_csrf(foreign) == _without_csrf(missing)  # the log-out form's token is masked per response
    assert str(other.number) not in foreign.content.decode()


def test_a_tampered_invoice_shows_the_cannot_be_paid_page(settings: Any) -> None:
    customer = make_customer()
    invoice = make_invoice(customer)
    settings.INVOICE_CHECKSUM_KEYS = "dev1:" + base64.b64encode(b"an-attacker-does-not-have-the-key!!").decode()
    response = _client(make_member(customer)).get(reverse("portal:invoice-detail", kwargs={"invoice_id": invoice.id}))
    assert response.status_code == 409
    body = response.content.decode()
    assert "This invoice cannot be paid" in body
    assert str(invoice.number) not in body
    with rls.acting_as(READER):
        assert InvoiceChecksumMismatch.objects.filter(invoice=invoice).count() == 1


def test_the_detail_page_shows_bank_transfer_instructions_while_something_is_due(settings: Any) -> None:
    settings.BANK_TRANSFER_ACCOUNT_NAME = "Paymenter Hosting Pty Ltd"
    settings.BANK_TRANSFER_BSB = "062-000"
    settings.BANK_TRANSFER_ACCOUNT_NUMBER = "12345678"
    customer = make_customer()
    due, paid = make_invoice(customer), make_paid_invoice(customer)
    client = _client(make_member(customer))
    body = client.get(reverse("portal:invoice-detail", kwargs={"invoice_id": due.id})).content.decode()
    assert 'id="bank-transfer-reference"' in body
    assert 'id="bank-transfer-bsb">062-000<' in body
    paid_body = client.get(reverse("portal:invoice-detail", kwargs={"invoice_id": paid.id})).content.decode()
    assert "bank-transfer" not in paid_body


def test_the_customers_own_page_shows_the_buyers_contact_and_a_pay_link_only_what_a_tax_invoice_needs() -> None:
    """A pay link may be forwarded: behind it the buyer is named (name, tax id), not located."""
    customer = make_customer(email="accounts@hobart-hosting.example")
    invoice = make_invoice(customer)
    own = _client(make_member(customer)).get(reverse("portal:invoice-detail", args=[invoice.id])).content.decode()
    hosted = Client().get(reverse("portal:hosted-invoice", kwargs={"token": pay_link_token(invoice=invoice)}))

    for page in (own, hosted.content.decode()):
        assert str(customer.name) in page
    assert "accounts@hobart-hosting.example" in own
    assert "Salamanca Place" in own
    assert "accounts@hobart-hosting.example" not in hosted.content.decode()
    assert "Salamanca Place" not in hosted.content.decode()
