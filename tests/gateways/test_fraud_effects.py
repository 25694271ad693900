"""What the fraud rules' decisions do to payments (docs/fraud.md, "What the decisions do").

The rules themselves are the fraud app's (tests/fraud/); here a fixed assessor named by
``PAYMENT_RISK_ASSESSOR`` decides, and what is tested is the effect: a block before the
start (stored, audited, refused with no rule named, no session at Stripe), a review (held,
``payment.review_required`` once, no ``invoice.paid``), staff approving (released then
paid, each once even when two approve at once) or rejecting (refunded at Stripe, the
invoice open or voided), a block after the payment (refunded, unpaid), and support, who
may look but not decide.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.db import connections
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from devtools.stripe_peer.harness import StripePeer
from events.delivery import outbox_deliver_message
from fraud.models import CustomerRiskFlag
from gateways.base import GatewayCode, GatewayDispute, GatewayDisputeStatus, GatewayFraudWarning
from gateways.errors import PaymentBlockedError, PaymentReviewForbiddenError, PaymentReviewNotAllowedError
from gateways.models import Payment, PaymentAttempt, Refund
from gateways.paypal.adapter import PaypalGateway
from gateways.registry import gateway_for
from gateways.risk import PaymentReportedContext, PaymentStartContext, RiskAssessment, RiskDecision
from gateways.services import (
    disputes_settle,
    fraud_warning_record,
    payment_review_approve,
    payment_review_reject,
    payment_settle,
)
from invoices.models import Invoice
from paymenter import rls
from paymenter.models import OutboxMessage
from paymenter.money import Money
from paymenter.principals import StaffPrincipal, SystemPrincipal
from tests.factories import make_customer, make_invoice, pay_invoice, start_card_payment

pytestmark = pytest.mark.fraud_rules
READER = SystemPrincipal(label="test:fraud-effects")
ASSESSMENT = uuid.UUID("5f0c8a3e-9d41-4b6e-8a27-1c3d5e7f9a0b")


class _Fixed:
    """Answers one decision at each hook point (the rules are not what is tested here)."""

    def __init__(self, start: RiskDecision, report: RiskDecision, retry_after_seconds: int | None = None) -> None:
        self.start, self.report, self.retry_after_seconds = start, report, retry_after_seconds

    def before_start(self, context: PaymentStartContext) -> RiskAssessment:
        return RiskAssessment(
            self.start, ("rule: secret",), assessment_id=ASSESSMENT, retry_after_seconds=self.retry_after_seconds
        )

    def after_report(self, context: PaymentReportedContext) -> RiskAssessment:
        return RiskAssessment(self.report, ("rule: secret",), assessment_id=ASSESSMENT)


BLOCK_START = _Fixed(RiskDecision.BLOCK, RiskDecision.ALLOW)
TOO_MANY = _Fixed(RiskDecision.BLOCK, RiskDecision.ALLOW, retry_after_seconds=540)
REVIEW = _Fixed(RiskDecision.ALLOW, RiskDecision.REVIEW)
BLOCK_REPORT = _Fixed(RiskDecision.ALLOW, RiskDecision.BLOCK)


def _assessor(settings: Any, name: str) -> None:
    settings.PAYMENT_RISK_ASSESSOR = f"{__name__}.{name}"


def _events(invoice: Invoice) -> list[tuple[str, str]]:
    with rls.acting_as(READER):
        return list(
            OutboxMessage.objects.filter(payload__data__invoice_id=str(invoice.id))
            .order_by("id")  # insertion order: the per-invoice delivery order
            .values_list("topic", "payload__type")
        )


def _o2s(invoice: Invoice) -> list[str]:
    return [kind for topic, kind in _events(invoice) if topic == "o2s.callback"]


def _actions(invoice: Invoice, action: str) -> list[AuditEvent]:
    with rls.acting_as(READER):
        return list(AuditEvent.objects.filter(object_id=str(invoice.id), action=action))


def _stored(invoice: Invoice) -> Invoice:
    with rls.acting_as(READER):
        return Invoice.objects.get(pk=invoice.pk)


def _staff(role: str) -> User:
    user = User.objects.create_user(username=f"fraud-{role}-{uuid.uuid4().hex[:8]}", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


def _paid_by_card(peer: StripePeer, invoice: Invoice) -> Payment:
    """A PaymentIntent Stripe took for ``invoice``, recorded from the fetch-back."""
    intent = peer.payment_intent_paid(invoice.total_minor, metadata={"invoice_id": str(invoice.id)})
    reported = gateway_for("stripe").payment_fetch(transaction_id=intent)
    assert reported is not None
    settled = payment_settle(principal=READER, reported=reported, recorded_by="test")
    assert settled.payment is not None
    return settled.payment


@pytest.mark.django_db
def test_a_block_before_start_is_stored_and_audited_and_starts_nothing_at_stripe(
    stripe_settings: StripePeer, settings: Any
) -> None:
    _assessor(settings, "BLOCK_START")
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # closed: any call to Stripe would answer 503, not 403
    invoice = make_invoice(make_customer())

    with pytest.raises(PaymentBlockedError) as refused:
        start_card_payment(invoice)

    assert refused.value.message == "This payment cannot be started. Please contact us if you need help."
    assert "secret" not in refused.value.message
    with rls.acting_as(READER):
        assert not PaymentAttempt.objects.filter(invoice=invoice).exists()
    [blocked] = _actions(invoice, "payment.blocked")
    assert blocked.payload["risk_assessment_id"] == str(ASSESSMENT)
    assert not _actions(invoice, "payment.attempt_started")


@pytest.mark.django_db
def test_too_many_attempts_says_when_to_try_again_and_nothing_else(stripe_settings: StripePeer, settings: Any) -> None:
    _assessor(settings, "TOO_MANY")
    invoice = make_invoice(make_customer())

    with pytest.raises(PaymentBlockedError) as refused:
        start_card_payment(invoice)

    assert refused.value.message == "Too many payment attempts: try again in 9 minutes."
    assert refused.value.status_code == 403


@pytest.mark.django_db
def test_a_reused_attempt_is_not_assessed_again(stripe_settings: StripePeer, settings: Any) -> None:
    invoice = make_invoice(make_customer())
    settings.PAYMENT_RISK_ASSESSOR = "gateways.risk.ALLOW_ALL"
    first = start_card_payment(invoice)
    _assessor(settings, "BLOCK_START")  # a double click: the open attempt is handed out again

    again = start_card_payment(invoice)

    assert again.id == first.id
    assert not _actions(invoice, "payment.blocked")


@pytest.mark.django_db
def test_a_new_attempt_keeps_its_assessment(stripe_settings: StripePeer, settings: Any) -> None:
    _assessor(settings, "REVIEW")  # before_start allows
    invoice = make_invoice(make_customer())

    attempt = start_card_payment(invoice)

    assert attempt.risk_assessment_id == ASSESSMENT


@pytest.mark.django_db
def test_a_review_holds_the_payment_and_tells_o2s_once_and_never_paid(
    stripe_settings: StripePeer, settings: Any
) -> None:
    _assessor(settings, "REVIEW")
    invoice = make_invoice(make_customer())

    payment = _paid_by_card(stripe_settings, invoice)
    reported = gateway_for("stripe").payment_fetch(transaction_id=payment.transaction_id)
    assert reported is not None
    payment_settle(principal=READER, reported=reported, recorded_by="test:again")  # a second delivery

    assert (payment.status, payment.held_reason, payment.risk_assessment_id) == ("held", "risk_review", ASSESSMENT)
    assert _stored(invoice).status == "open"
    assert _o2s(invoice) == ["payment.review_required"]
    with rls.acting_as(READER):
        [message] = OutboxMessage.objects.filter(
            topic="o2s.callback", payload__data__invoice_id=str(invoice.id), payload__type="payment.review_required"
        )
    assert message.payload["data"]["payment"]["payment_id"] == str(payment.id)
    assert "secret" not in str(message.payload)  # the reasons are staff's


@pytest.mark.django_db
def test_a_reviewed_bank_transfer_approved_pays_the_invoice(settings: Any) -> None:
    _assessor(settings, "REVIEW")
    invoice = make_invoice(make_customer())
    payment = pay_invoice(invoice)
    assert (payment.status, payment.held_reason) == ("held", "risk_review")
    billing = _staff("billing")

    approved = payment_review_approve(principal=READER, payment_id=payment.id, user_id=billing.pk)
    again = payment_review_approve(principal=READER, payment_id=payment.id, user_id=billing.pk)

    assert (approved.status, approved.held_reason, approved.resolved_by_id) == ("applied", "", billing.pk)
    assert again.status == "applied"
    assert _stored(invoice).status == "paid"
    assert _o2s(invoice) == ["payment.review_required", "payment.review_released", "invoice.paid"]
    [audited] = _actions(invoice, "payment.review_approved")
    assert audited.payload["user_id"] == billing.pk


@pytest.mark.django_db
def test_support_cannot_decide_a_review_and_nothing_is_written(settings: Any) -> None:
    _assessor(settings, "REVIEW")
    invoice = make_invoice(make_customer())
    payment = pay_invoice(invoice)
    support = _staff("support")
    before = (_events(invoice), len(_actions(invoice, "payment.review_approved")))

    with pytest.raises(PaymentReviewForbiddenError):
        payment_review_approve(principal=READER, payment_id=payment.id, user_id=support.pk)
    with pytest.raises(PaymentReviewForbiddenError):
        payment_review_reject(principal=READER, payment_id=payment.id, user_id=support.pk)
    client = Client()
    client.force_login(support)
    for decision in ("approve", "reject"):
        url = reverse("admin:gateways_payment_review", args=[payment.id, decision])
        assert client.post(url).status_code == 403
    queue = client.get(reverse("admin:gateways_payment_changelist") + "?fraud_review=waiting")

    assert queue.status_code == 200
    assert payment.transaction_id in queue.content.decode()
    assert "review_approve" not in queue.content.decode()  # no actions for support
    with rls.acting_as(READER):
        stored = Payment.objects.get(pk=payment.pk)
    assert (stored.status, stored.resolved_at) == ("held", None)
    assert (_events(invoice), len(_actions(invoice, "payment.review_approved"))) == before
    assert not _actions(invoice, "payment.review_rejected")


@pytest.mark.django_db
def test_billing_approves_from_the_payment_page(settings: Any) -> None:
    _assessor(settings, "REVIEW")
    invoice = make_invoice(make_customer())
    payment = pay_invoice(invoice)
    client = Client()
    client.force_login(_staff("billing"))

    page = client.get(reverse("admin:gateways_payment_change", args=[payment.id]))
    answer = client.post(reverse("admin:gateways_payment_review", args=[payment.id, "approve"]))

    assert 'id="review-approve"' in page.content.decode()
    assert answer.status_code == 302
    assert _stored(invoice).status == "paid"


@pytest.mark.django_db
def test_a_rejected_card_payment_is_refunded_at_stripe_and_the_invoice_stays_open(
    stripe_settings: StripePeer, settings: Any
) -> None:
    _assessor(settings, "REVIEW")
    invoice = make_invoice(make_customer())
    payment = _paid_by_card(stripe_settings, invoice)
    billing = _staff("billing")

    payment_review_reject(principal=READER, payment_id=payment.id, user_id=billing.pk)
    payment_review_reject(principal=READER, payment_id=payment.id, user_id=billing.pk)  # a double click

    with rls.acting_as(READER):
        [refund] = Refund.objects.filter(payment=payment)
        stored = Payment.objects.get(pk=payment.pk)
    assert (refund.origin, refund.status, refund.amount_minor) == ("automatic", "succeeded", payment.amount_minor)
    assert refund.gateway_refund_id.startswith("re_")
    assert refund.credit_note_id is None  # money that never counted
    refunded = [event for event in stripe_settings.events() if event["type"] == "charge.refunded"]
    assert [event["data"]["object"]["payment_intent"] for event in refunded] == [payment.transaction_id]
    assert (stored.status, stored.resolved_by_id) == ("held", billing.pk)
    assert _stored(invoice).status == "open"
    assert _o2s(invoice) == ["payment.review_required"]
    [audited] = _actions(invoice, "payment.review_rejected")
    assert (audited.payload["user_id"], audited.payload["invoice_action"]) == (billing.pk, "reopen")
    with pytest.raises(PaymentReviewNotAllowedError):
        payment_review_approve(principal=READER, payment_id=payment.id, user_id=billing.pk)


@pytest.mark.django_db
def test_a_rejection_voids_the_invoice_when_so_configured(stripe_settings: StripePeer, settings: Any) -> None:
    _assessor(settings, "REVIEW")
    settings.FRAUD_REJECT_ACTION = "void"
    invoice = make_invoice(make_customer())
    payment = _paid_by_card(stripe_settings, invoice)

    payment_review_reject(principal=READER, payment_id=payment.id, user_id=_staff("admin").pk)

    assert _stored(invoice).status == "void"
    assert _o2s(invoice) == ["payment.review_required", "invoice.voided"]
    with rls.acting_as(READER):
        assert Refund.objects.get(payment=payment).status == "succeeded"


@pytest.mark.django_db
def test_a_block_after_payment_refunds_it_and_the_invoice_stays_unpaid(
    stripe_settings: StripePeer, settings: Any
) -> None:
    _assessor(settings, "BLOCK_REPORT")
    invoice = make_invoice(make_customer())

    payment = _paid_by_card(stripe_settings, invoice)

    with rls.acting_as(READER):
        stored = Payment.objects.get(pk=payment.pk)
        [refund] = Refund.objects.filter(payment=payment)
    assert (stored.status, stored.held_reason, stored.risk_assessment_id) == ("held", "risk_blocked", ASSESSMENT)
    assert stored.resolved_at is not None  # given back: dealt with
    assert (refund.origin, refund.status) == ("automatic", "succeeded")
    assert _stored(invoice).status == "open"
    assert _o2s(invoice) == []  # O2S is never told to provision


@pytest.mark.committed
def test_two_staff_approving_at_once_release_and_pay_once(committed_db: None, settings: Any) -> None:
    _assessor(settings, "REVIEW")
    invoice = make_invoice(make_customer())
    payment = pay_invoice(invoice)
    approvers = [_staff("billing"), _staff("admin")]
    start = threading.Barrier(len(approvers))

    def approve(user: User) -> str:
        try:
            start.wait(timeout=30)
            done = payment_review_approve(
                principal=StaffPrincipal(user_id=user.pk, username=user.username),
                payment_id=payment.id,
                user_id=user.pk,
            )
            return str(done.status)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=len(approvers)) as pool:
        outcomes = list(pool.map(approve, approvers))

    assert outcomes == ["applied", "applied"]
    assert _stored(invoice).status == "paid"
    assert Counter(_o2s(invoice)) == Counter(
        {"payment.review_required": 1, "payment.review_released": 1, "invoice.paid": 1}
    )
    assert _o2s(invoice)[-2:] == ["payment.review_released", "invoice.paid"]
    assert len(_actions(invoice, "payment.review_approved")) == 1


@pytest.mark.django_db
def test_an_early_fraud_warning_puts_the_customers_next_payment_to_review(settings: Any) -> None:
    settings.PAYMENT_RISK_ASSESSOR = "gateways.risk.ALLOW_ALL"
    customer = make_customer()
    invoice = make_invoice(customer)
    paid = pay_invoice(invoice)
    warning = GatewayFraudWarning(
        gateway=GatewayCode(paid.gateway),
        warning_id=f"issfr_{uuid.uuid4().hex}",
        transaction_id=paid.transaction_id,
        fraud_type="made_with_stolen_card",
        actionable=True,
    )

    fraud_warning_record(principal=READER, reported=warning)
    fraud_warning_record(principal=READER, reported=warning)  # the webhook again
    with rls.acting_as(READER):
        [signal] = OutboxMessage.objects.filter(topic="fraud.risk_signal", payload__data__invoice_id=str(invoice.id))
    outbox_deliver_message(message_id=signal.id)
    settings.PAYMENT_RISK_ASSESSOR = "fraud.engine.ASSESSOR"
    next_payment = pay_invoice(make_invoice(customer))

    assert signal.payload["type"] == "payment.fraud_warning"
    assert "payment.fraud_warning" not in _o2s(invoice)  # a risk signal, not news for O2S
    with rls.acting_as(READER):
        assert CustomerRiskFlag.objects.filter(customer_id=customer.id, cleared_at__isnull=True).count() == 1
    assert (next_payment.status, next_payment.held_reason) == ("held", "risk_review")


@pytest.mark.parametrize(
    ("order", "country"),
    [
        ({"payer": {"address": {"country_code": "nz"}}}, "NZ"),
        ({"payment_source": {"paypal": {"address": {"country_code": "AU"}}}}, "AU"),
        ({"payer": {"name": {"given_name": "Test"}}}, ""),
    ],
)
def test_paypal_reports_the_payers_country_for_the_rules(order: dict[str, Any], country: str) -> None:
    captured = {
        "id": "ORDER1",
        "status": "COMPLETED",
        "purchase_units": [
            {
                "payments": {
                    "captures": [
                        {"id": "CAP1", "status": "COMPLETED", "amount": {"currency_code": "AUD", "value": "10.00"}}
                    ]
                }
            }
        ],
        **order,
    }

    reported = PaypalGateway()._from_order(captured)

    assert (reported.transaction_id, reported.payer_country) == ("CAP1", country)


@pytest.mark.django_db
def test_a_dispute_raises_the_customers_risk_once(settings: Any) -> None:
    settings.PAYMENT_RISK_ASSESSOR = "gateways.risk.ALLOW_ALL"
    customer = make_customer()
    invoice = make_invoice(customer)
    paid = pay_invoice(invoice)
    dispute = GatewayDispute(
        gateway=GatewayCode(paid.gateway),
        dispute_id=f"dp_{uuid.uuid4().hex}",
        transaction_id=paid.transaction_id,
        status=GatewayDisputeStatus.OPEN,
        amount=Money(paid.amount_minor, paid.currency),
    )

    disputes_settle(principal=READER, reported=[dispute], recorded_by="test")
    disputes_settle(principal=READER, reported=[dispute], recorded_by="test:again")
    with rls.acting_as(READER):
        [signal] = OutboxMessage.objects.filter(topic="fraud.risk_signal", payload__data__invoice_id=str(invoice.id))
    outbox_deliver_message(message_id=signal.id)

    assert signal.payload["type"] == "invoice.disputed"
    with rls.acting_as(READER):
        assert CustomerRiskFlag.objects.filter(customer_id=customer.id, cleared_at__isnull=True).count() == 1


@pytest.mark.django_db
def test_the_real_rules_block_a_fourth_new_attempt_before_anything_starts_at_stripe(
    stripe_settings: StripePeer, settings: Any
) -> None:
    """The engine's decision (its own enum: fraud may not import gateways) blocks for real."""
    settings.PAYMENT_RISK_ASSESSOR = "fraud.engine.ASSESSOR"
    customer = make_customer()
    invoices = [make_invoice(customer) for _ in range(4)]
    started = [start_card_payment(invoice) for invoice in invoices[:3]]

    with pytest.raises(PaymentBlockedError) as refused:
        start_card_payment(invoices[3])

    assert all(attempt.redirect_url for attempt in started)
    assert refused.value.message.startswith("Too many payment attempts: try again in ")
    with rls.acting_as(READER):
        assert not PaymentAttempt.objects.filter(invoice_id=invoices[3].id).exists()
    assert len(_actions(invoices[3], "payment.blocked")) == 1
