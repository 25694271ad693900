"""The fraud engine: ``gateways.risk.RiskAssessor`` for the ``PAYMENT_RISK_ASSESSOR`` setting.

``gateways`` and ``fraud`` are sibling domain apps that do not import each other
(docs/architecture.md): the engine reads the hook's context objects by their attributes
(``gateways.risk.PaymentStartContext`` / ``PaymentReportedContext``) and answers with
:class:`Verdict`, which has the fields of ``gateways.risk.RiskAssessment`` and whose
``decision`` is a ``str`` enum with the same values as ``gateways.risk.RiskDecision``.

Each call runs the enabled rules for its stage (``fraud.rules.RULES``, configured by
``fraud.models.RuleConfig``); the strongest decision wins (block > review > allow). The
assessment - every rule's decision, reason and inputs - is stored and audited in the
caller's transaction, so it commits or rolls back with the attempt or payment it decided;
the metrics count it when that transaction commits.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from django.db import transaction
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import audit_record
from billing.models import Customer
from fraud.models import Assessment, Decision, RuleConfig, Stage
from fraud.rules import (
    DECISION_RANK,
    RULES,
    CardCheck,
    ReportFacts,
    RuleConfigError,
    RuleResult,
    StartFacts,
    rule_build,
    source_address,
)
from invoices.models import Invoice
from paymenter import rls
from paymenter.metrics import LabelledMetric, metric_increment_labelled
from paymenter.money import Money
from paymenter.principals import SystemPrincipal

logger = logging.getLogger(__name__)

ENGINE_PRINCIPAL = SystemPrincipal(label="fraud:engine")
"""The engine reads and counts across customers (velocity per source address), so it acts
as the system; the audit event keeps the caller's principal as its actor."""


@dataclass(frozen=True)
class Verdict:
    """The answer, shaped as ``gateways.risk.RiskAssessment``."""

    decision: Decision
    reasons: tuple[str, ...]
    assessment_id: uuid.UUID
    """Always stored: every assessment is kept."""
    retry_after_seconds: int | None = None


class _StartContext(Protocol):
    @property
    def invoice_id(self) -> uuid.UUID: ...
    @property
    def customer_id(self) -> uuid.UUID: ...
    @property
    def gateway(self) -> str: ...
    @property
    def amount(self) -> Money: ...
    @property
    def source_ip(self) -> str: ...


class _ReportedContext(Protocol):
    @property
    def invoice_id(self) -> uuid.UUID: ...
    @property
    def customer_id(self) -> uuid.UUID: ...
    @property
    def payment(self) -> Any: ...


class FraudAssessor:
    """Runs the rules. ``clock`` is the assessment's "now" (the velocity window counts on
    it); tests pass a fixed one."""

    def __init__(self, *, clock: Callable[[], datetime] = timezone.now) -> None:
        self.clock = clock

    def before_start(self, context: _StartContext) -> Verdict:
        actor = rls.current_principal()
        with rls.acting_as(ENGINE_PRINCIPAL):
            facts = StartFacts(
                invoice_id=context.invoice_id,
                customer_id=context.customer_id,
                gateway=str(context.gateway),
                amount=context.amount,
                source_ip=context.source_ip or "",
                billing_country=_billing_country(context.customer_id),
                now=self.clock(),
            )
            results = self._run(Stage.BEFORE_START, facts)
            return self._store(
                stage=Stage.BEFORE_START,
                results=results,
                actor=actor,
                invoice_id=facts.invoice_id,
                customer_id=facts.customer_id,
                gateway=facts.gateway,
                source_ip=source_address(facts.source_ip),
                transaction_id="",
                now=facts.now,
            )

    def after_report(self, context: _ReportedContext) -> Verdict:
        actor = rls.current_principal()
        payment = context.payment
        card = getattr(payment, "card", None)
        with rls.acting_as(ENGINE_PRINCIPAL):
            invoice = Invoice.objects.values("total_minor", "currency").get(id=context.invoice_id)
            facts = ReportFacts(
                invoice_id=context.invoice_id,
                customer_id=context.customer_id,
                gateway=str(payment.gateway),
                method=str(payment.method),
                amount=payment.amount,
                invoice_total=Money(int(invoice["total_minor"]), str(invoice["currency"])),
                transaction_id=str(payment.transaction_id),
                card=None
                if card is None
                else CardCheck(
                    country=str(card.country or ""),
                    cvc_check=str(card.cvc_check or ""),
                    address_postal_code_check=str(card.address_postal_code_check or ""),
                    address_line1_check=str(card.address_line1_check or ""),
                    three_d_secure_result=str(card.three_d_secure_result or ""),
                ),
                payer_country=str(getattr(payment, "payer_country", "") or ""),
                billing_country=_billing_country(context.customer_id),
                now=self.clock(),
            )
            results = self._run(Stage.AFTER_REPORT, facts)
            return self._store(
                stage=Stage.AFTER_REPORT,
                results=results,
                actor=actor,
                invoice_id=facts.invoice_id,
                customer_id=facts.customer_id,
                gateway=facts.gateway,
                source_ip=None,
                transaction_id=facts.transaction_id,
                now=facts.now,
            )

    def _run(self, stage: Stage, facts: StartFacts | ReportFacts) -> list[tuple[str, RuleResult]]:
        configs = {row.name: row for row in RuleConfig.objects.all()}
        results: list[tuple[str, RuleResult]] = []
        for name in RULES:
            row = configs.get(name)
            if row is not None and not row.enabled:
                continue
            try:
                rule = rule_build(name, row.config if row is not None else {})
            except RuleConfigError as exc:  # edited around the admin form: fail towards review
                logger.error("fraud rule %s has an unusable configuration: %s", name, exc)  # noqa: TRY400
                results.append((name, RuleResult(Decision.REVIEW, "rule configuration unusable", {"error": str(exc)})))
                continue
            hook = getattr(rule, stage.value, None)
            if hook is not None:
                results.append((name, hook(facts)))
        return results

    def _store(
        self,
        *,
        stage: Stage,
        results: list[tuple[str, RuleResult]],
        actor: Any,
        invoice_id: uuid.UUID,
        customer_id: uuid.UUID,
        gateway: str,
        source_ip: str | None,
        transaction_id: str,
        now: datetime,
    ) -> Verdict:
        decision = max(
            (result.decision for _, result in results), key=DECISION_RANK.__getitem__, default=Decision.ALLOW
        )
        reasons = tuple(f"{name}: {result.reason}" for name, result in results if result.decision is not Decision.ALLOW)
        retry_after = None
        if decision is Decision.BLOCK:
            retry_after = max(
                (
                    int(result.inputs["retry_after_seconds"])
                    for _, result in results
                    if result.decision is Decision.BLOCK and "retry_after_seconds" in result.inputs
                ),
                default=None,
            )
        assessment = Assessment.objects.create(
            stage=stage,
            decision=decision,
            results=[
                {"rule": name, "decision": result.decision.value, "reason": result.reason, "inputs": result.inputs}
                for name, result in results
            ],
            reasons=list(reasons),
            invoice_id=invoice_id,
            customer_id=customer_id,
            source_ip=source_ip,
            gateway=gateway,
            transaction_id=transaction_id,
            created_at=now,
        )
        audit_record(
            action=AuditAction.FRAUD_ASSESSED,
            principal=actor,
            object_type="invoice",
            object_id=str(invoice_id),
            customer_id=customer_id,
            payload={
                "assessment_id": str(assessment.id),
                "stage": stage.value,
                "decision": decision.value,
                "reasons": list(reasons),
                "gateway": gateway,
                "transaction_id": transaction_id,
            },
        )
        counts = [(name, result.decision.value) for name, result in results]
        transaction.on_commit(lambda: _count(stage.value, decision.value, counts))
        return Verdict(decision=decision, reasons=reasons, assessment_id=assessment.id, retry_after_seconds=retry_after)


def _billing_country(customer_id: uuid.UUID) -> str:
    country = Customer.objects.filter(id=customer_id).values_list("billing_country", flat=True).first()
    return str(country or "")


def _count(stage: str, decision: str, rules: list[tuple[str, str]]) -> None:
    metric_increment_labelled(LabelledMetric.FRAUD_ASSESSMENTS, {"stage": stage, "decision": decision})
    for rule, rule_decision in rules:
        metric_increment_labelled(LabelledMetric.FRAUD_RULE_DECISIONS, {"rule": rule, "decision": rule_decision})


ASSESSOR = FraudAssessor()
"""The ``PAYMENT_RISK_ASSESSOR`` of production: ``fraud.engine.ASSESSOR``."""
