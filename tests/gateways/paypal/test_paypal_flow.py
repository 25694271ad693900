"""Paying an invoice with PayPal, end to end against the local fake: the order is created from
the stored invoice, approved on the fake's page, captured server-side by whichever path
sees it first (the customer's return, the CHECKOUT.ORDER.APPROVED webhook), and recorded
once through the ledger; refunds made in PayPal's dashboard, disputes and reversals arrive
by signed webhooks and are recorded after the fetch-back."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import Group, User

from devtools.paypal_peer.harness import PaypalPeer
from gateways.base import GatewayPaymentStatus
from gateways.models import Dispute, Payment, PaymentAttempt, Refund, WebhookEvent
from gateways.services import payment_attempt_confirm, payment_attempt_start, refund_request, webhook_event_process
from invoices.models import CreditNote, Invoice, InvoiceChecksumMismatch
from paymenter import rls
from paymenter.money import Money
from paymenter.principals import StaffPrincipal, SystemPrincipal
from tests.factories import make_customer, make_invoice
from tests.gateways.paypal import samples
from tests.paypal_peer_fixtures import PaypalPKI, signed_delivery

pytestmark = pytest.mark.django_db
ACTOR = SystemPrincipal(label="test:paypal-flow")


@pytest.fixture
def peer(paypal_certificate: PaypalPKI, paypal_settings: PaypalPeer) -> PaypalPeer:
    paypal_settings.configure(delivery="hold")  # the tests hand webhooks over themselves
    return paypal_settings


def _start(invoice: Invoice) -> PaymentAttempt:
    with rls.acting_as(ACTOR):
        return payment_attempt_start(
            principal=ACTOR,
            invoice=invoice,
            gateway_code="paypal",
            return_urls=lambda attempt_id: (
                f"https://billing.example.test/pay/{attempt_id}/return",
                f"https://billing.example.test/pay/{attempt_id}/cancel",
            ),
        )


def _attempt(attempt: PaymentAttempt) -> PaymentAttempt:
    with rls.acting_as(ACTOR):
        return PaymentAttempt.objects.get(pk=attempt.pk)


def _deliver(peer: PaypalPeer, pki: PaypalPKI, event_type: str) -> str:
    """Hand the fake's (latest) ``event_type`` event to the app, signed as PayPal signs it;
    process it as the outbox worker would; the event's processing status."""
    event = [event for event in peer.events() if event["event_type"] == event_type][-1]
    response = samples.post_delivery(*signed_delivery(event, pki))
    assert response.status_code == 200, response.content
    with rls.acting_as(ACTOR):
        stored = WebhookEvent.objects.get(gateway="paypal", event_id=event["id"])
    return str(webhook_event_process(webhook_event_id=stored.pk))


def _state(invoice: Invoice) -> dict[str, Any]:
    with rls.acting_as(ACTOR):
        stored = Invoice.objects.get(pk=invoice.pk)
        return {
            "status": stored.status,
            "paid": stored.amount_paid_minor,
            "payments": list(Payment.objects.filter(invoice=invoice).values_list("gateway", "amount_minor", "status")),
        }


def _paid_with_paypal(peer: PaypalPeer) -> tuple[Invoice, str]:
    """An invoice paid with PayPal (approved, captured on return); its capture id."""
    invoice = make_invoice(make_customer())
    attempt = _start(invoice)
    peer.approve(attempt.gateway_session_id)
    payment_attempt_confirm(principal=ACTOR, attempt=_attempt(attempt), recorded_by="return")
    (capture,) = [e["resource"]["id"] for e in peer.events() if e["event_type"] == "PAYMENT.CAPTURE.COMPLETED"]
    return invoice, capture


def _paid(invoice: Invoice) -> dict[str, Any]:
    return {"status": "paid", "paid": invoice.total_minor, "payments": [("paypal", invoice.total_minor, "applied")]}


def test_the_customer_approves_and_returns_the_order_is_captured_and_the_invoice_paid_once(
    peer: PaypalPeer, paypal_certificate: PaypalPKI
) -> None:
    invoice = make_invoice(make_customer())
    attempt = _start(invoice)
    assert attempt.redirect_url == f"{peer.api_base}/checkoutnow?token={attempt.gateway_session_id}"
    location = peer.approve_in_browser(attempt.redirect_url)
    assert location.startswith(f"https://billing.example.test/pay/{attempt.id}/return?")
    assert parse_qs(urlsplit(location).query)["token"] == [attempt.gateway_session_id]
    settlement = payment_attempt_confirm(principal=ACTOR, attempt=_attempt(attempt), recorded_by="return")
    assert settlement.status is GatewayPaymentStatus.SUCCEEDED
    assert _state(invoice) == _paid(invoice)
    # PayPal's webhooks arrive after the fact: both find the payment recorded, nothing changes
    assert _deliver(peer, paypal_certificate, "CHECKOUT.ORDER.APPROVED") in ("processed", "ignored")
    assert _deliver(peer, paypal_certificate, "PAYMENT.CAPTURE.COMPLETED") in ("processed", "ignored")
    assert _state(invoice) == _paid(invoice)
    captures = [e for e in peer.events() if e["event_type"] == "PAYMENT.CAPTURE.COMPLETED"]
    assert len(captures) == 1  # captured once at PayPal
    with rls.acting_as(ACTOR):
        payment = Payment.objects.get(invoice=invoice)
    assert payment.transaction_id == captures[0]["resource"]["id"]


def test_the_customer_does_not_come_back_the_approved_webhook_captures(
    peer: PaypalPeer, paypal_certificate: PaypalPKI
) -> None:
    invoice = make_invoice(make_customer())
    attempt = _start(invoice)
    peer.approve(attempt.gateway_session_id)
    assert _deliver(peer, paypal_certificate, "CHECKOUT.ORDER.APPROVED") == "processed"
    assert _state(invoice) == _paid(invoice)
    assert _deliver(peer, paypal_certificate, "PAYMENT.CAPTURE.COMPLETED") in ("processed", "ignored")
    assert _state(invoice) == _paid(invoice)
    assert payment_attempt_confirm(principal=ACTOR, attempt=_attempt(attempt), recorded_by="return").status is (
        GatewayPaymentStatus.SUCCEEDED
    )
    assert len([e for e in peer.events() if e["event_type"] == "PAYMENT.CAPTURE.COMPLETED"]) == 1


def test_a_pending_capture_pays_the_invoice_only_when_paypal_completes_it(
    peer: PaypalPeer, paypal_certificate: PaypalPKI
) -> None:
    peer.configure(capture_status="PENDING")
    invoice = make_invoice(make_customer())
    attempt = _start(invoice)
    peer.approve(attempt.gateway_session_id)
    settlement = payment_attempt_confirm(principal=ACTOR, attempt=_attempt(attempt), recorded_by="return")
    assert settlement.status is GatewayPaymentStatus.PENDING
    assert _state(invoice)["payments"] == []
    (capture,) = [e["resource"]["id"] for e in peer.events() if e["event_type"] == "PAYMENT.CAPTURE.PENDING"]
    peer.set_capture_status(capture, "COMPLETED")
    assert _deliver(peer, paypal_certificate, "PAYMENT.CAPTURE.COMPLETED") == "processed"
    assert _state(invoice) == _paid(invoice)


def test_a_dashboard_refund_arrives_by_webhook_and_is_recorded_once(
    peer: PaypalPeer, paypal_certificate: PaypalPKI
) -> None:
    invoice, capture = _paid_with_paypal(peer)
    refund = peer.refund_in_dashboard(capture, value="1.00")
    assert _deliver(peer, paypal_certificate, "PAYMENT.CAPTURE.REFUNDED") == "processed"
    with rls.acting_as(ACTOR):
        recorded = list(
            Refund.objects.filter(invoice=invoice).values_list("gateway_refund_id", "amount_minor", "status")
        )
    assert recorded == [(refund["id"], 100, "succeeded")]


def test_a_dispute_and_a_reversal_are_recorded_on_the_payment(peer: PaypalPeer, paypal_certificate: PaypalPKI) -> None:
    invoice, capture = _paid_with_paypal(peer)
    dispute = peer.open_dispute(capture)
    assert _deliver(peer, paypal_certificate, "CUSTOMER.DISPUTE.CREATED") == "processed"
    peer.set_capture_status(capture, "REVERSED")
    assert _deliver(peer, paypal_certificate, "PAYMENT.CAPTURE.REVERSED") == "processed"
    with rls.acting_as(ACTOR):
        recorded = sorted(Dispute.objects.filter(invoice=invoice).values_list("gateway_dispute_id", "status"))
    assert recorded == sorted([(dispute["dispute_id"], "open"), (f"reversal:{capture}", "lost")])


def test_billing_staff_refund_a_paypal_payment_through_paypal_and_its_webhook_changes_nothing(
    peer: PaypalPeer, paypal_certificate: PaypalPKI
) -> None:
    invoice, capture = _paid_with_paypal(peer)
    with rls.acting_as(ACTOR):
        payment = Payment.objects.get(invoice=invoice)
    assert payment.transaction_id == capture
    staff = User.objects.create_user(username="paypal-refunder", is_staff=True)
    staff.groups.add(Group.objects.get(name="billing"))

    refund = refund_request(
        principal=StaffPrincipal(user_id=staff.pk, username=staff.username),
        payment_id=payment.pk,
        amount=Money(invoice.total_minor, invoice.currency),
        reason="cancelled the service",
        user_id=staff.pk,
    )
    assert _deliver(peer, paypal_certificate, "PAYMENT.CAPTURE.REFUNDED") == "processed"

    assert (refund.status, refund.origin) == ("succeeded", "staff")
    with rls.acting_as(ACTOR):
        stored = Invoice.objects.get(pk=invoice.pk)
        refunds = list(Refund.objects.filter(invoice=invoice).values_list("gateway_refund_id", "status"))
        notes = list(CreditNote.objects.filter(invoice=invoice).values_list("total_minor", "tax_minor"))
    assert (stored.status, stored.amount_refunded_minor) == ("refunded", invoice.total_minor)
    assert refunds == [(refund.gateway_refund_id, "succeeded")]  # the webhook found our own refund
    assert notes == [(invoice.total_minor, invoice.tax_minor)]


def test_an_approved_order_of_a_tampered_invoice_is_never_captured(peer: PaypalPeer, settings: Any) -> None:
    """An invoice whose checksum fails takes no money: the approval is left uncaptured."""
    invoice = make_invoice(make_customer())
    attempt = _start(invoice)
    peer.approve(attempt.gateway_session_id)
    settings.INVOICE_CHECKSUM_KEYS = "dev1:" + base64.b64encode(b"an-attacker-does-not-have-the-key!!").decode()

    settlement = payment_attempt_confirm(principal=ACTOR, attempt=_attempt(attempt), recorded_by="return")

    assert settlement.status is not GatewayPaymentStatus.SUCCEEDED
    assert [e for e in peer.events() if e["event_type"].startswith("PAYMENT.CAPTURE")] == []
    stored = _attempt(attempt)
    assert (stored.status, stored.failure_reason) == ("failed", "invoice_checksum_mismatch")
    with rls.acting_as(ACTOR):
        assert not Payment.objects.filter(invoice=invoice).exists()
        assert InvoiceChecksumMismatch.objects.filter(invoice=invoice).count() == 1
