""" "Pay now" from the portal: the hosted page's way of starting a payment, for a logged-in
customer, against the local Stripe peer."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from billing.services import customer_grant_access
from devtools.stripe_peer.harness import StripePeer
from gateways.models import Payment, PaymentAttempt
from gateways.services import refund_request
from invoices.models import CreditNote, Invoice
from invoices.services import invoice_void
from paymenter import rls
from paymenter.money import Money
from paymenter.principals import StaffPrincipal, SystemPrincipal
from tests.factories import FACTORY_PRINCIPAL, UserFactory, make_customer, make_invoice, make_member, make_paid_invoice

pytestmark = pytest.mark.django_db
READER = SystemPrincipal(label="test:portal-pay")
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="(?P<token>[^"]+)"')


@pytest.fixture
def peer(stripe_settings: StripePeer) -> StripePeer:
    stripe_settings.configure(delivery="hold")  # tests hand webhooks over themselves
    return stripe_settings


def _member_client(invoice: Invoice) -> tuple[Client, User]:
    with rls.acting_as(READER):
        customer = Invoice.objects.select_related("customer").get(pk=invoice.pk).customer
    user = make_member(customer)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client, user


def _detail(invoice: Invoice) -> str:
    return reverse("portal:invoice-detail", kwargs={"invoice_id": invoice.id})


def _pay(client: Client, invoice: Invoice, gateway: str = "stripe", **extra: str) -> Any:
    page = client.get(_detail(invoice))
    match = CSRF.search(page.content.decode())
    assert match, "no form on the page"
    return client.post(
        reverse("portal:invoice-pay", kwargs={"invoice_id": invoice.id, "gateway": gateway}),
        {"csrfmiddlewaretoken": match["token"], **extra},
    )


def _written(invoice: Invoice) -> dict[str, Any]:
    with rls.acting_as(READER):
        return {
            "attempts": PaymentAttempt.objects.filter(invoice=invoice).count(),
            "payments": Payment.objects.filter(invoice=invoice).count(),
            "audit": AuditEvent.objects.filter(object_id=str(invoice.id)).count(),
            "status": Invoice.objects.get(pk=invoice.pk).status,
        }


def test_pay_now_starts_at_stripe_and_a_double_click_makes_one_attempt(peer: StripePeer) -> None:
    invoice = make_invoice(make_customer())
    client, _ = _member_client(invoice)
    page = client.get(_detail(invoice))
    assert 'id="pay-by-card"' in page.content.decode()
    assert "no-store" in page["Cache-Control"]
    first, second = _pay(client, invoice), _pay(client, invoice)
    assert first.status_code == second.status_code == 303
    assert first["Location"].startswith(f"{peer.api_base}/checkout/cs_")
    assert first["Location"] == second["Location"]
    with rls.acting_as(READER):
        attempt = PaymentAttempt.objects.get(invoice=invoice)
    assert (attempt.amount_minor, attempt.currency) == (invoice.total_minor, "AUD")


def test_a_tampered_amount_or_currency_in_the_form_is_ignored(peer: StripePeer) -> None:
    invoice = make_invoice(make_customer())
    client, _ = _member_client(invoice)
    started = _pay(client, invoice, amount="1", amount_minor="1", currency="USD")
    assert started.status_code == 303
    with rls.acting_as(READER):
        attempt = PaymentAttempt.objects.get(invoice=invoice)
    assert (attempt.amount_minor, attempt.currency) == (invoice.total_minor, "AUD")


def test_paying_on_the_peer_returns_to_paid_with_a_link_back_to_the_invoice(peer: StripePeer) -> None:
    invoice = make_invoice(make_customer())
    client, _ = _member_client(invoice)
    back = peer.pay(_pay(client, invoice)["Location"])
    page = client.get(urlsplit(back).path)
    body = page.content.decode()
    assert 'id="payment-result">Paid<' in body
    assert f'href="{_detail(invoice)}" id="back-to-invoice"' in body
    assert _written(invoice)["status"] == "paid"
    assert 'id="invoice-paid"' in client.get(_detail(invoice)).content.decode()


def test_cancelling_links_back_to_the_portal_invoice(peer: StripePeer) -> None:
    invoice = make_invoice(make_customer())
    client, _ = _member_client(invoice)
    _pay(client, invoice)
    with rls.acting_as(READER):
        attempt = PaymentAttempt.objects.get(invoice=invoice)
    page = client.get(reverse("portal:payment-cancelled", kwargs={"attempt_id": attempt.id}))
    assert f'href="{_detail(invoice)}"' in page.content.decode()


def test_a_gateway_that_is_not_enabled_is_refused_with_nothing_written(peer: StripePeer) -> None:
    invoice = make_invoice(make_customer())
    client, _ = _member_client(invoice)
    before = _written(invoice)
    refused = _pay(client, invoice, gateway="paypal")  # PayPal is not configured here
    assert refused.status_code == 404
    assert 'id="payment-notice"' in refused.content.decode()
    assert _written(invoice) == before


def test_a_gateway_that_is_down_is_reported_as_503(peer: StripePeer, settings: Any) -> None:
    invoice = make_invoice(make_customer())
    client, _ = _member_client(invoice)
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens there
    refused = _pay(client, invoice)
    assert refused.status_code == 503
    assert 'id="payment-notice"' in refused.content.decode()
    assert _written(invoice)["payments"] == 0


@pytest.mark.parametrize("state", ["paid", "void"])
def test_a_paid_or_void_invoice_offers_no_payment_and_refuses_one(peer: StripePeer, state: str) -> None:
    customer = make_customer()
    if state == "paid":
        invoice = make_paid_invoice(customer)
    else:
        invoice = make_invoice(customer)
        invoice_void(principal=FACTORY_PRINCIPAL, invoice_id=invoice.id, reason="test")
    client, _ = _member_client(invoice)
    page = client.get(_detail(invoice)).content.decode()
    assert "pay-by-card" not in page
    assert "bank-transfer" not in page
    before = _written(invoice)
    match = CSRF.search(page)
    assert match  # the log-out form's
    refused = client.post(
        reverse("portal:invoice-pay", kwargs={"invoice_id": invoice.id, "gateway": "stripe"}),
        {"csrfmiddlewaretoken": match["token"]},
    )
    assert refused.status_code == 409
    assert _written(invoice) == before


def test_another_customers_invoice_cannot_be_paid(peer: StripePeer) -> None:
    invoice = make_invoice(make_customer())
    client, _ = _member_client(make_invoice(make_customer()))
    before = _written(invoice)
    page = client.get(_detail(invoice))
    match = CSRF.search(page.content.decode())
    assert match
    refused = client.post(
        reverse("portal:invoice-pay", kwargs={"invoice_id": invoice.id, "gateway": "stripe"}),
        {"csrfmiddlewaretoken": match["token"]},
    )
    assert refused.status_code == 404
    assert _written(invoice) == before


def test_a_user_who_may_only_view_sees_no_pay_button_and_cannot_pay(peer: StripePeer) -> None:
    customer = make_customer()
    invoice = make_invoice(customer)
    viewer = UserFactory.create()
    customer_grant_access(
        principal=FACTORY_PRINCIPAL, customer_id=customer.id, user=viewer, permissions=["view_customer_invoices"]
    )
    client = Client()
    client.force_login(viewer)
    page = client.get(_detail(invoice))
    assert page.status_code == 200
    assert "pay-by-card" not in page.content.decode()
    before = _written(invoice)
    refused = client.post(reverse("portal:invoice-pay", kwargs={"invoice_id": invoice.id, "gateway": "stripe"}))
    assert refused.status_code == 404
    assert _written(invoice) == before


def test_the_pay_form_needs_its_csrf_token(peer: StripePeer) -> None:
    invoice = make_invoice(make_customer())
    client, _ = _member_client(invoice)
    refused = client.post(reverse("portal:invoice-pay", kwargs={"invoice_id": invoice.id, "gateway": "stripe"}))
    assert refused.status_code == 403
    assert _written(invoice)["attempts"] == 0


def test_anonymous_pay_is_sent_to_log_in(peer: StripePeer) -> None:
    invoice = make_invoice(make_customer())
    response = Client().post(reverse("portal:invoice-pay", kwargs={"invoice_id": invoice.id, "gateway": "stripe"}))
    assert response.status_code == 302
    assert _written(invoice)["attempts"] == 0


def test_the_invoice_page_shows_its_payments_refunds_and_credit_notes(peer: StripePeer) -> None:
    invoice = make_invoice(make_customer())
    client, _ = _member_client(invoice)
    back = peer.pay(_pay(client, invoice)["Location"])
    assert 'id="payment-result">Paid<' in client.get(urlsplit(back).path).content.decode()
    staff = UserFactory.create(is_staff=True)
    staff.groups.add(Group.objects.get(name="billing"))
    with rls.acting_as(READER):
        payment = Payment.objects.get(invoice=invoice)
    refund = refund_request(
        principal=StaffPrincipal(user_id=staff.pk, username=staff.username),
        payment_id=payment.pk,
        amount=Money(1000, "AUD"),
        reason="downgrade",
        user_id=staff.pk,
    )
    assert refund.status == "succeeded"
    with rls.acting_as(READER):
        note = CreditNote.objects.get(invoice=invoice)
    body = client.get(_detail(invoice)).content.decode()
    assert 'id="payments"' in body
    assert "Received" in body
    assert "<td>Card</td>" in body
    assert reverse("portal:receipt-pdf", kwargs={"payment_id": payment.id}) in body
    assert reverse("portal:credit-note-pdf", kwargs={"credit_note_id": note.id}) in body
    assert reverse("portal:invoice-pdf", kwargs={"invoice_id": invoice.id}) in body
    assert 'id="refunds"' in body
    assert "AUD 10.00" in body
    assert 'id="credit-notes"' in body
    assert note.number in body
    assert 'id="amount-refunded">AUD 10.00<' in body
