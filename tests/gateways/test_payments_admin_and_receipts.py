"""Staff see the ledger and the inbox; billing re-processes failed events and settles held
payments (audited), support only looks; a recorded payment e-mails the customer a receipt."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from events.delivery import outbox_deliver_message
from gateways.base import GatewayCode, PaymentMethod
from gateways.models import Payment, WebhookEvent, WebhookEventStatus
from gateways.services import payment_receive, webhook_event_store
from gateways.stripe.webhooks import stripe_event_parse
from invoices.models import Invoice
from paymenter import rls
from paymenter.models import OutboxMessage
from paymenter.money import Money
from paymenter.principals import SystemPrincipal
from tests.factories import make_customer, make_invoice
from tests.stripe_events import checkout_session_event

pytestmark = pytest.mark.django_db
SYSTEM = SystemPrincipal(label="test:payments-admin")
WEBHOOKS = reverse("admin:gateways_webhookevent_changelist")
PAYMENTS = reverse("admin:gateways_payment_changelist")


def _staff(role: str) -> tuple[Client, User]:
    user = User.objects.create_user(username=f"staff-{role}-{uuid.uuid4().hex[:6]}", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client, user


def _receive(invoice: Invoice, minor: int, currency: str = "AUD") -> Payment:
    settlement = payment_receive(
        principal=SYSTEM,
        invoice_id=invoice.id,
        amount=Money(minor, currency),
        gateway=GatewayCode.BANK_TRANSFER,
        transaction_id=f"bt-{uuid.uuid4().hex}",
        method=PaymentMethod.BANK_TRANSFER,
        recorded_by="test",
    )
    assert settlement.payment is not None
    return settlement.payment


def _failed_event(settings: Any) -> WebhookEvent:
    """A stored event whose processing failed (Stripe unreachable at the time)."""
    settings.STRIPE_SECRET_KEY = "sk_test_x"
    body = json.dumps(checkout_session_event(event_id=f"evt_test_{uuid.uuid4().hex[:8]}")).encode()
    stored_id = webhook_event_store(
        event=stripe_event_parse(body, signed_at=int(time.time())), body=body, signed_at=None
    )
    assert stored_id is not None
    with rls.acting_as(SYSTEM):
        WebhookEvent.objects.filter(pk=stored_id).update(status=WebhookEventStatus.FAILED, last_error="x")
        return WebhookEvent.objects.get(pk=stored_id)


@pytest.mark.parametrize("role", ["admin", "billing", "support"])
def test_every_staff_role_sees_the_ledger_and_the_inbox(role: str, settings: Any) -> None:
    invoice = make_invoice(make_customer())
    _receive(invoice, 100)
    event = _failed_event(settings)
    client, _ = _staff(role)
    for url in (PAYMENTS, WEBHOOKS, reverse("admin:gateways_paymentattempt_changelist")):
        assert client.get(url).status_code == 200
    page = client.get(reverse("admin:gateways_webhookevent_change", args=[event.pk]))
    assert page.status_code == 200
    assert b"Save" not in page.content  # read-only


def test_support_cannot_reprocess_and_nothing_is_written(settings: Any) -> None:
    event = _failed_event(settings)
    client, _ = _staff("support")
    with rls.acting_as(SYSTEM):
        before = AuditEvent.objects.count()
    response = client.post(WEBHOOKS, {"action": "reprocess", "_selected_action": [str(event.pk)]})
    assert response.status_code in (200, 302)
    with rls.acting_as(SYSTEM):
        assert WebhookEvent.objects.get(pk=event.pk).attempts == 0
        assert AuditEvent.objects.count() == before


def test_billing_reprocesses_a_failed_event_and_it_is_audited_with_the_user(settings: Any) -> None:
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # Stripe still down: the event stays pending
    settings.STRIPE_TIMEOUT_SECONDS = 1
    event = _failed_event(settings)
    client, user = _staff("billing")
    client.post(WEBHOOKS, {"action": "reprocess", "_selected_action": [str(event.pk)]})
    with rls.acting_as(SYSTEM):
        audit = AuditEvent.objects.get(action="webhook.event_reprocessed", object_id=str(event.pk))
    assert (audit.actor_type, audit.actor_id) == ("staff", str(user.pk))
    with rls.acting_as(SYSTEM):
        again = WebhookEvent.objects.get(pk=event.pk)
    assert (again.attempts, again.status) == (1, "received")
    assert again.last_error.startswith("gateway unavailable")


def test_billing_marks_a_held_payment_dealt_with_and_support_cannot() -> None:
    invoice = make_invoice(make_customer())
    held = _receive(invoice, invoice.total_minor, currency="USD")
    assert (held.status, held.held_reason) == ("held", "currency_mismatch")
    support, _ = _staff("support")
    support.post(PAYMENTS, {"action": "resolve_held", "_selected_action": [str(held.pk)]})
    with rls.acting_as(SYSTEM):
        assert Payment.objects.get(pk=held.pk).resolved_at is None
    billing, user = _staff("billing")
    billing.post(PAYMENTS, {"action": "resolve_held", "_selected_action": [str(held.pk)]})
    with rls.acting_as(SYSTEM):
        resolved = Payment.objects.get(pk=held.pk)
        assert AuditEvent.objects.filter(action="payment.held_resolved", object_id=str(invoice.id)).count() == 1
    assert resolved.resolved_by_id == user.pk


def test_a_payment_sends_one_receipt_naming_what_was_paid_how_and_for_which_invoice() -> None:
    customer = make_customer(email="accounts@receipt.example")
    invoice = make_invoice(customer)
    _receive(invoice, 1000)
    _receive(invoice, invoice.total_minor - 1000)
    with rls.acting_as(SYSTEM):
        receipts = list(OutboxMessage.objects.filter(topic="portal.receipt", customer_id=customer.id).order_by("id"))
    assert [message.payload["type"] for message in receipts] == ["payment.recorded", "invoice.paid"]
    for message in receipts:
        outbox_deliver_message(message_id=message.id)
        outbox_deliver_message(message_id=message.id)  # a second nudge sends nothing more
    assert len(mail.outbox) == 2
    partial, full = mail.outbox
    assert partial.to == ["accounts@receipt.example"]
    assert invoice.number
    assert invoice.number in str(partial.subject)
    assert "AUD 10.00" in partial.body
    assert "Bank transfer" in partial.body
    assert "Still due" in partial.body
    assert "paid in full" in full.body
