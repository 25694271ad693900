"""Paying by card from the hosted invoice page, end to end against the local Stripe peer
(localstripe + our checkout double): Checkout Session with 3-D Secure, the server-to-server
confirmation on return, webhooks stored once and acted on only after the fetch-back."""

from __future__ import annotations

import base64
import re
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest
import stripe
from django.core import mail
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from devtools.stripe_peer.harness import StripePeer
from gateways.base import GatewayCode, PaymentMethod
from gateways.models import Payment, PaymentAttempt, WebhookEvent
from gateways.services import payment_attempts_reconcile, payment_receive, webhook_event_process
from invoices.models import Invoice, InvoiceChecksumMismatch
from invoices.pay_links import pay_link_token
from invoices.services import invoice_void
from paymenter import rls
from paymenter.models import OutboxMessage
from paymenter.money import Money
from paymenter.principals import SystemPrincipal
from tests.factories import make_customer, make_invoice
from tests.paymenter.test_security_headers import directives
from tests.stripe_events import WEBHOOK_URL, signed, stripe_event

pytestmark = pytest.mark.django_db
READER = SystemPrincipal(label="test:stripe-checkout")
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="(?P<token>[^"]+)"')


@pytest.fixture
def peer(stripe_settings: StripePeer) -> StripePeer:
    stripe_settings.configure(delivery="hold")  # tests hand webhooks over themselves
    return stripe_settings


def _invoice(**kwargs: Any) -> Invoice:
    return make_invoice(make_customer(), **kwargs)


def _start(client: Client, invoice: Invoice) -> Any:
    token = pay_link_token(invoice=invoice)
    page = client.get(reverse("portal:hosted-invoice", kwargs={"token": token}))
    match = CSRF.search(page.content.decode())
    assert match, "no Pay form on the page"
    return client.post(
        reverse("portal:payment-start", kwargs={"token": token, "gateway": "stripe"}),
        {"csrfmiddlewaretoken": match["token"]},
    )


def _state(invoice: Invoice) -> dict[str, Any]:
    with rls.acting_as(READER):
        stored = Invoice.objects.get(pk=invoice.pk)
        return {
            "status": stored.status,
            "paid": stored.amount_paid_minor,
            "payments": list(Payment.objects.filter(invoice=invoice).values_list("status", "held_reason")),
            "paid_events": AuditEvent.objects.filter(object_id=str(invoice.id), action="invoice.paid").count(),
            "paid_messages": sorted(
                OutboxMessage.objects.filter(
                    payload__type="invoice.paid", payload__data__invoice_id=str(invoice.id)
                ).values_list("topic", flat=True)
            ),
        }


def _checksums_no_longer_match(settings: Any) -> None:
    """The stored checksums stop verifying: exactly what an edit of what is owed looks like."""
    settings.INVOICE_CHECKSUM_KEYS = "dev1:" + base64.b64encode(b"an-attacker-does-not-have-the-key!!").decode()


def _deliver(body: str, header: str) -> Any:
    return Client().post(WEBHOOK_URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)


def _process_inbox() -> list[str]:
    with rls.acting_as(READER):
        pending = list(
            WebhookEvent.objects.filter(status="received").order_by("received_at").values_list("pk", flat=True)
        )
    return [webhook_event_process(webhook_event_id=pk) for pk in pending]


def test_pay_by_card_with_3d_secure_and_the_return_page_confirms_before_the_webhook(peer: StripePeer) -> None:
    invoice = _invoice()
    client = Client(enforce_csrf_checks=True)
    started = _start(client, invoice)
    assert started.status_code == 303
    assert started["Location"].startswith(f"{peer.api_base}/checkout/cs_")
    with rls.acting_as(READER):
        attempt = PaymentAttempt.objects.get(invoice=invoice)
    assert (attempt.status, attempt.amount_minor, attempt.currency) == ("open", invoice.total_minor, "AUD")
    session = stripe.StripeClient("sk_test_peer", base_addresses={"api": peer.api_base}).v1.checkout.sessions.retrieve(
        attempt.gateway_session_id
    )
    assert session.payment_method_options.card.request_three_d_secure == "any"  # type: ignore[union-attr]
    assert (session.client_reference_id, session.amount_total, session.currency) == (
        str(invoice.id),
        invoice.total_minor,
        "aud",
    )

    back = peer.pay(started["Location"], card_number="4000002500003155")  # challenged, then authenticated
    assert _state(invoice)["status"] == "open"  # the webhook is held: nothing happened yet
    page = client.get(urlsplit(back).path)

    assert page.status_code == 200
    assert 'id="payment-result">Paid<' in page.content.decode()
    state = _state(invoice)
    assert state == {
        "status": "paid",
        "paid": invoice.total_minor,
        "payments": [("applied", "")],
        "paid_events": 1,
        "paid_messages": ["o2s.callback", "portal.receipt"],
    }
    with rls.acting_as(READER):
        payment = Payment.objects.get(invoice=invoice)
    assert (payment.method, payment.three_d_secure_result, payment.cvc_check, payment.card_country) == (
        "card",
        "authenticated",
        "pass",
        "US",
    )
    assert payment.transaction_id.startswith("pi_")

    # the late webhooks (the session's and localstripe's payment_intent.succeeded) change nothing
    peer.configure(webhook_url="http://127.0.0.1:9/unused", delivery="hold")
    for event in peer.events():
        body, header = signed(event)
        assert _deliver(body, header).status_code == 200
    assert set(_process_inbox()) <= {"processed", "ignored"}
    assert _state(invoice) == state


def test_a_double_click_on_pay_reuses_the_attempt_and_the_session(peer: StripePeer) -> None:
    invoice = _invoice()
    client = Client()
    first, second = _start(client, invoice), _start(client, invoice)
    assert first["Location"] == second["Location"]
    with rls.acting_as(READER):
        assert PaymentAttempt.objects.filter(invoice=invoice).count() == 1
        assert AuditEvent.objects.filter(action="payment.attempt_started", object_id=str(invoice.id)).count() == 1


def test_the_webhook_alone_settles_the_invoice_after_the_fetch_back(peer: StripePeer) -> None:
    invoice = _invoice()
    started = _start(Client(), invoice)
    peer.pay(started["Location"])  # the customer never comes back
    completed = [event for event in peer.events() if event["type"] == "checkout.session.completed"]
    assert len(completed) == 1
    body, header = signed(completed[0])
    assert _deliver(body, header).status_code == 200
    assert _state(invoice)["status"] == "open"  # stored, not yet processed: the endpoint only stores
    assert _process_inbox() == ["processed"]
    assert _state(invoice)["status"] == "paid"
    assert len(mail.outbox) == 0  # the receipt goes out from the outbox worker, not the request


def test_a_webhook_claiming_paid_while_stripe_says_otherwise_records_nothing(peer: StripePeer) -> None:
    invoice = _invoice()
    _start(Client(), invoice)
    with rls.acting_as(READER):
        attempt = PaymentAttempt.objects.get(invoice=invoice)
    # a validly signed event (say, the secret leaked) claiming the session was paid by an
    # intent that Stripe says never succeeded
    client = stripe.StripeClient("sk_test_peer", base_addresses={"api": peer.api_base})
    unpaid = client.v1.payment_intents.create(params={"amount": invoice.total_minor, "currency": "aud"})
    session = {"id": attempt.gateway_session_id, "object": "checkout.session", "payment_intent": unpaid.id}
    body, header = signed(stripe_event("checkout.session.completed", session))
    assert _deliver(body, header).status_code == 200
    assert _process_inbox() == ["processed"]
    assert _state(invoice) == {"status": "open", "paid": 0, "payments": [], "paid_events": 0, "paid_messages": []}


@pytest.mark.parametrize(
    ("amount_delta", "currency", "reason"), [(-100, "aud", "amount_mismatch"), (0, "usd", "currency_mismatch")]
)
def test_a_payment_intent_for_another_amount_or_currency_is_held_and_never_pays(
    peer: StripePeer, amount_delta: int, currency: str, reason: str
) -> None:
    invoice = _invoice()
    _start(Client(), invoice)
    with rls.acting_as(READER):
        attempt = PaymentAttempt.objects.get(invoice=invoice)
    client = stripe.StripeClient("sk_test_peer", base_addresses={"api": peer.api_base})
    card = client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}
    )
    intent = client.v1.payment_intents.create(
        params={
            "amount": invoice.total_minor + amount_delta,
            "currency": currency,
            "payment_method": card.id,
            "confirm": True,
            "metadata": {"invoice_id": str(invoice.id), "attempt_id": str(attempt.id)},
        }
    )
    assert intent.status == "succeeded"
    body, header = signed(stripe_event("payment_intent.succeeded", {"id": intent.id, "object": "payment_intent"}))
    assert _deliver(body, header).status_code == 200
    assert _process_inbox() == ["processed"]
    assert _state(invoice) == {
        "status": "open",
        "paid": 0,
        "payments": [("held", reason)],
        "paid_events": 0,
        "paid_messages": [],
    }
    with rls.acting_as(READER):
        assert AuditEvent.objects.filter(action="payment.held", object_id=str(invoice.id)).count() == 1


def test_a_tampered_invoice_takes_no_money_on_return(peer: StripePeer, settings: Any) -> None:
    invoice = _invoice()
    client = Client()
    started = _start(client, invoice)
    back = peer.pay(started["Location"])
    _checksums_no_longer_match(settings)  # as if what is owed had been edited behind the services' back
    page = client.get(urlsplit(back).path)
    assert page.status_code == 200
    assert "Paid" not in page.content.decode().split('id="payment-result">')[1][:10]
    state = _state(invoice)
    assert (state["status"], state["payments"], state["paid_events"], state["paid_messages"]) == ("open", [], 0, [])
    with rls.acting_as(READER):
        assert InvoiceChecksumMismatch.objects.filter(invoice=invoice).count() == 1


def test_a_tampered_invoice_offers_no_payment_and_starts_none(peer: StripePeer, settings: Any) -> None:
    invoice = _invoice()
    _checksums_no_longer_match(settings)
    token = pay_link_token(invoice=invoice)
    page = Client().get(reverse("portal:hosted-invoice", kwargs={"token": token}))
    assert page.status_code == 409
    assert "Pay by card" not in page.content.decode()
    refused = Client().post(reverse("portal:payment-start", kwargs={"token": token, "gateway": "stripe"}))
    assert refused.status_code == 409
    with rls.acting_as(READER):
        assert PaymentAttempt.objects.filter(invoice=invoice).count() == 0


def test_paid_and_void_invoices_offer_no_payment(peer: StripePeer) -> None:
    paid, void = _invoice(), _invoice()
    payment_receive(
        principal=READER,
        invoice_id=paid.id,
        amount=Money(paid.total_minor, "AUD"),
        gateway=GatewayCode.BANK_TRANSFER,
        transaction_id=f"bt-{uuid.uuid4()}",
        method=PaymentMethod.BANK_TRANSFER,
        recorded_by="test",
    )
    invoice_void(principal=READER, invoice_id=void.id, reason="test")
    for invoice, status in ((paid, 409), (void, 409)):
        token = pay_link_token(invoice=invoice)
        page = Client().get(reverse("portal:hosted-invoice", kwargs={"token": token}))
        assert "Pay by card" not in page.content.decode()
        refused = Client().post(reverse("portal:payment-start", kwargs={"token": token, "gateway": "stripe"}))
        assert refused.status_code == status
        with rls.acting_as(READER):
            assert PaymentAttempt.objects.filter(invoice=invoice).count() == 0


def test_cancel_says_nothing_was_charged(peer: StripePeer) -> None:
    invoice = _invoice()
    client = Client()
    _start(client, invoice)
    with rls.acting_as(READER):
        attempt = PaymentAttempt.objects.get(invoice=invoice)
    page = client.get(reverse("portal:payment-cancelled", kwargs={"attempt_id": attempt.id}))
    assert "Nothing was charged" in page.content.decode()
    assert "/pay/" in page.content.decode()  # the way back to the invoice, from the session


def test_the_reconciliation_job_settles_a_payment_whose_webhooks_were_lost(peer: StripePeer, settings: Any) -> None:
    settings.PAYMENT_RECONCILE_AFTER_SECONDS = -1  # every open attempt is due
    peer.configure(delivery="drop")
    invoice = _invoice()
    peer.pay(_start(Client(), invoice)["Location"])
    report = payment_attempts_reconcile()
    assert report.errors == []
    assert _state(invoice)["status"] == "paid"
    assert payment_attempts_reconcile().checked == 0  # settled: nothing left to ask about


def test_a_gateway_that_is_down_charges_nothing_and_says_so(peer: StripePeer, settings: Any) -> None:
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"
    settings.STRIPE_TIMEOUT_SECONDS = 2
    invoice = _invoice()
    response = _start(Client(), invoice)
    assert response.status_code == 503
    assert "Nothing was charged" in response.content.decode()
    assert _state(invoice)["payments"] == []


def test_an_expired_session_closes_its_attempt_so_a_new_one_can_start(peer: StripePeer) -> None:
    invoice = _invoice()
    first = _start(Client(), invoice)["Location"]
    with rls.acting_as(READER):
        attempt = PaymentAttempt.objects.get(invoice=invoice)
    client = stripe.StripeClient("sk_test_peer", base_addresses={"api": peer.api_base})
    client.v1.checkout.sessions.expire(attempt.gateway_session_id)
    expired = [event for event in peer.events() if event["type"] == "checkout.session.expired"]
    body, header = signed(expired[0])
    _deliver(body, header)
    assert _process_inbox() == ["processed"]
    with rls.acting_as(READER):
        assert PaymentAttempt.objects.get(pk=attempt.pk).status == "expired"
    assert _start(Client(), invoice)["Location"] != first


def test_the_pay_page_lets_its_form_lead_only_to_the_gateways_checkout(peer: StripePeer, settings: Any) -> None:
    """(The header's directive order is not fixed: each directive is read on its own.)"""
    invoice = _invoice()
    url = reverse("portal:hosted-invoice", kwargs={"token": pay_link_token(invoice=invoice)})
    local = directives(Client().get(url))
    assert local["form-action"] == f"'self' {peer.api_base}"  # CSP applies to the redirect after the POST
    settings.STRIPE_API_BASE = "https://api.stripe.com"
    assert directives(Client().get(url))["form-action"] == "'self' https://checkout.stripe.com"
    settings.STRIPE_CHECKOUT_ORIGIN = "http://127.0.0.1:9999"  # a peer serving its pages elsewhere
    assert directives(Client().get(url))["form-action"] == "'self' http://127.0.0.1:9999"
    settings.STRIPE_SECRET_KEY = ""  # no gateway enabled: no button, no extra origin
    page = Client().get(url)
    assert directives(page)["form-action"] == "'self'"
    assert "Pay by card" not in page.content.decode()


def test_a_return_the_gateway_cannot_answer_says_not_confirmed_and_records_nothing(peer: StripePeer) -> None:
    invoice = _invoice()
    client = Client()
    _start(client, invoice)
    with rls.acting_as(READER):
        attempt = PaymentAttempt.objects.get(invoice=invoice)
        PaymentAttempt.objects.filter(pk=attempt.pk).update(gateway_session_id="cs_test_unknown_to_stripe")
    page = client.get(reverse("portal:payment-return", kwargs={"attempt_id": attempt.id}))
    assert page.status_code == 200
    assert 'id="payment-result">Not confirmed yet<' in page.content.decode()
    assert _state(invoice) == {"status": "open", "paid": 0, "payments": [], "paid_events": 0, "paid_messages": []}
