"""The fraud rules' hook points (gateways/risk.py): an assessor named by a setting is asked
before a payment starts and after the gateway reports it; today's default allows."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from audit.models import AuditEvent
from gateways.base import CardFacts, GatewayCode, GatewayPayment, GatewayPaymentStatus, PaymentMethod
from gateways.errors import PaymentBlockedError
from gateways.models import PaymentAttempt
from gateways.risk import (
    ALLOW_ALL,
    PaymentReportedContext,
    PaymentStartContext,
    RiskAssessment,
    RiskDecision,
    risk_assessor,
)
from gateways.services import payment_attempt_start, payment_settle
from invoices.models import Invoice
from paymenter import rls
from paymenter import settings as project_settings
from paymenter.models import OutboxMessage
from paymenter.money import Money
from paymenter.principals import SystemPrincipal
from tests.factories import make_customer, make_invoice

pytestmark = pytest.mark.django_db
SYSTEM = SystemPrincipal(label="test:risk")
SEEN: list[object] = []


class _Decides:
    def __init__(self, decision: RiskDecision) -> None:
        self.decision = decision

    def before_start(self, context: PaymentStartContext) -> RiskAssessment:
        SEEN.append(context)
        return RiskAssessment(self.decision, ("test rule",))

    def after_report(self, context: PaymentReportedContext) -> RiskAssessment:
        SEEN.append(context)
        return RiskAssessment(self.decision, ("test rule",))


BLOCK_ALL = _Decides(RiskDecision.BLOCK)
REVIEW_ALL = _Decides(RiskDecision.REVIEW)


def test_production_runs_the_fraud_rules_and_other_tests_allow_all() -> None:
    """The project's default is the fraud engine; tests not marked ``fraud_rules`` run with
    ALLOW_ALL (tests/conftest.py), whose answers arrive normalized like any assessor's."""
    context = PaymentStartContext(
        invoice_id=uuid.uuid4(),
        customer_id=uuid.uuid4(),
        gateway=GatewayCode.STRIPE,
        amount=Money(100, "AUD"),
        source_ip="",
    )

    assert project_settings.PAYMENT_RISK_ASSESSOR == "fraud.engine.ASSESSOR"
    assert risk_assessor().before_start(context) == RiskAssessment(RiskDecision.ALLOW)
    assert ALLOW_ALL.before_start(context) == RiskAssessment(RiskDecision.ALLOW)


def test_a_block_before_start_creates_no_attempt_and_names_no_rule(settings: Any) -> None:
    settings.STRIPE_SECRET_KEY = "sk_test_x"
    settings.PAYMENT_RISK_ASSESSOR = "tests.gateways.test_risk_hooks.BLOCK_ALL"
    invoice = make_invoice(make_customer())
    SEEN.clear()
    with pytest.raises(PaymentBlockedError) as refused:
        payment_attempt_start(
            principal=SYSTEM,
            invoice=invoice,
            gateway_code="stripe",
            return_urls=lambda attempt_id: ("https://x/ok", "https://x/cancel"),
            source_ip="203.0.113.9",
        )
    assert "rule" not in refused.value.message
    [context] = SEEN
    assert isinstance(context, PaymentStartContext)
    assert (context.invoice_id, context.amount, context.source_ip) == (
        invoice.id,
        Money(invoice.total_minor, "AUD"),
        "203.0.113.9",
    )
    with rls.acting_as(SYSTEM):
        assert PaymentAttempt.objects.filter(invoice=invoice).count() == 0
        assert AuditEvent.objects.filter(object_id=str(invoice.id), action="payment.attempt_started").count() == 0


def test_a_review_after_report_holds_the_payment_and_sends_no_paid_event(settings: Any) -> None:
    settings.PAYMENT_RISK_ASSESSOR = "tests.gateways.test_risk_hooks.REVIEW_ALL"
    invoice = make_invoice(make_customer())
    SEEN.clear()
    reported = GatewayPayment(
        gateway=GatewayCode.STRIPE,
        transaction_id=f"pi_{uuid.uuid4().hex}",
        status=GatewayPaymentStatus.SUCCEEDED,
        amount=Money(invoice.total_minor, "AUD"),
        method=PaymentMethod.CARD,
        invoice_id=invoice.id,
        card=CardFacts(country="US", cvc_check="pass", three_d_secure_result="authenticated"),
    )
    settlement = payment_settle(principal=SYSTEM, reported=reported, recorded_by="test")
    assert settlement.payment is not None
    assert (settlement.payment.status, settlement.payment.held_reason) == ("held", "risk_review")
    [context] = SEEN
    assert isinstance(context, PaymentReportedContext)
    assert context.payment.card == reported.card
    with rls.acting_as(SYSTEM):
        assert Invoice.objects.get(pk=invoice.pk).status == "open"
        assert not OutboxMessage.objects.filter(payload__type="invoice.paid", payload__data__invoice_id=str(invoice.id))
