"""Disputes and early fraud warnings raise the customer's risk (once per event, however
often the outbox delivers it); every assessment is counted by stage and decision, and each
rule's answer by rule and decision, in the /metrics counters."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from audit.actions import AuditAction
from audit.models import AuditEvent
from fraud.models import CustomerRiskFlag, Decision
from fraud.services import RISK_SIGNAL_TOPIC, risk_signal_deliver
from invoices.events import invoice_snapshot
from invoices.models import Invoice
from paymenter.metrics import LabelledMetric, labelled_metrics_snapshot, metrics_text
from paymenter.models import OutboxMessage
from paymenter.outbox import domain_event_envelope
from paymenter.principals import SystemPrincipal
from tests.factories import make_customer, make_invoice
from tests.fraud.helpers import Clock, assessor_at, card_report, start_context

pytestmark = [pytest.mark.fraud_rules, pytest.mark.django_db]


def _message(event_type: str, invoice: Invoice) -> OutboxMessage:
    envelope = domain_event_envelope(event_id=uuid.uuid4(), event_type=event_type, data=invoice_snapshot(invoice))
    return OutboxMessage(topic=RISK_SIGNAL_TOPIC, payload=envelope)


@pytest.mark.parametrize(
    ("event_type", "reason"),
    [
        ("invoice.disputed", "a payment of invoice {} was disputed"),
        ("payment.fraud_warning", "an early fraud warning about a payment of invoice {}"),
    ],
)
def test_a_dispute_or_warning_raises_the_customers_risk_once(
    system_principal: SystemPrincipal, event_type: str, reason: str
) -> None:
    invoice = make_invoice(make_customer())
    message = _message(event_type, invoice)

    risk_signal_deliver(message)
    risk_signal_deliver(message)  # redelivered: harmless

    flag = CustomerRiskFlag.objects.get(customer_id=invoice.customer_id)
    assert flag.reason == reason.format(invoice.number)
    assert flag.source_event_id == message.payload["id"]
    assert (
        AuditEvent.objects.filter(action=AuditAction.CUSTOMER_RISK_RAISED, object_id=str(invoice.customer_id)).count()
        == 1
    )
    assessment = assessor_at(Clock()).after_report(card_report(invoice))
    assert assessment.decision == Decision.REVIEW


def test_an_event_without_a_customer_is_ignored(system_principal: SystemPrincipal) -> None:
    message = OutboxMessage(topic=RISK_SIGNAL_TOPIC, payload={"id": "evt_x", "type": "invoice.disputed", "data": {}})
    before = CustomerRiskFlag.objects.count()
    risk_signal_deliver(message)
    assert CustomerRiskFlag.objects.count() == before


def _count(snapshot: dict[str, dict[str, int]], metric: LabelledMetric, labels: str) -> int:
    return snapshot[metric.value].get(labels, 0)


def test_assessments_are_counted_by_stage_decision_and_rule_when_they_commit(
    system_principal: SystemPrincipal, django_capture_on_commit_callbacks: Any
) -> None:
    invoice = make_invoice(make_customer())
    before = labelled_metrics_snapshot()

    with django_capture_on_commit_callbacks(execute=True):
        assessor_at(Clock()).before_start(start_context(invoice))
        assessor_at(Clock()).after_report(card_report(invoice, card=None))
    after = labelled_metrics_snapshot()

    def delta(metric: LabelledMetric, labels: str) -> int:
        return _count(after, metric, labels) - _count(before, metric, labels)

    assert delta(LabelledMetric.FRAUD_ASSESSMENTS, 'stage="before_start",decision="allow"') == 1
    assert delta(LabelledMetric.FRAUD_ASSESSMENTS, 'stage="after_report",decision="review"') == 1
    assert delta(LabelledMetric.FRAUD_RULE_DECISIONS, 'rule="velocity",decision="allow"') == 1
    assert delta(LabelledMetric.FRAUD_RULE_DECISIONS, 'rule="three_d_secure",decision="review"') == 1
    assert 'paymenter_fraud_assessments_total{stage="after_report",decision="review"} ' in metrics_text()


def test_an_assessment_rolled_back_is_not_counted(
    system_principal: SystemPrincipal, django_capture_on_commit_callbacks: Any
) -> None:
    invoice = make_invoice(make_customer())
    before = labelled_metrics_snapshot()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assessor_at(Clock()).before_start(start_context(invoice))
    assert len(callbacks) == 1  # run only at commit
    assert labelled_metrics_snapshot() == before
