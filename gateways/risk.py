"""The hook points where fraud rules assess a payment: before it starts, after it is reported.

``gateways`` and ``fraud`` are independent domain apps (docs/architecture.md), so the
ledger reaches the rules through a setting, the way the outbox reaches its subscribers:
``PAYMENT_RISK_ASSESSOR`` names an object satisfying :class:`RiskAssessor`. Until the
fraud rules exist it is :data:`ALLOW_ALL`, whose answer is always "allow".
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from gateways.base import GatewayCode, GatewayPayment
from paymenter.money import Money


class RiskDecision(StrEnum):
    ALLOW = "allow"
    REVIEW = "review"
    BLOCK = "block"


@dataclass(frozen=True)
class RiskAssessment:
    decision: RiskDecision
    reasons: tuple[str, ...] = ()
    """Human-readable, for staff; never shown to the customer."""
    assessment_id: uuid.UUID | None = None
    """The stored assessment (``fraud``'s row: the rules that fired, their reasons, the
    inputs used), kept on the attempt or payment it decided; ``None`` when nothing is stored."""
    retry_after_seconds: int | None = None
    """For a block that passes with time (velocity): when the customer may try again."""


@dataclass(frozen=True)
class PaymentStartContext:
    """What is known before a payment session is created."""

    invoice_id: uuid.UUID
    customer_id: uuid.UUID
    gateway: GatewayCode
    amount: Money
    source_ip: str
    """The request's client address ("" when there is none, e.g. a job)."""


@dataclass(frozen=True)
class PaymentReportedContext:
    """What the gateway reported about a payment (card country, 3-D Secure, CVC/AVS)."""

    invoice_id: uuid.UUID
    customer_id: uuid.UUID
    payment: GatewayPayment


class RiskAssessor(Protocol):
    def before_start(self, context: PaymentStartContext) -> RiskAssessment: ...

    def after_report(self, context: PaymentReportedContext) -> RiskAssessment: ...


class AllowAll:
    """Today's only answer: allow (the fraud rules replace it)."""

    def before_start(self, context: PaymentStartContext) -> RiskAssessment:
        return RiskAssessment(RiskDecision.ALLOW)

    def after_report(self, context: PaymentReportedContext) -> RiskAssessment:
        return RiskAssessment(RiskDecision.ALLOW)


ALLOW_ALL = AllowAll()


def _normalized(answer: RiskAssessment) -> RiskAssessment:
    """The assessor's answer in this module's types: ``fraud`` may not import ``gateways``,
    so its decision is its own str enum of the same values; callers compare with ``is``."""
    return RiskAssessment(
        decision=RiskDecision(answer.decision),
        reasons=tuple(answer.reasons),
        assessment_id=answer.assessment_id,
        retry_after_seconds=answer.retry_after_seconds,
    )


class _Normalizing:
    """Wraps the configured assessor so every answer is a :class:`RiskAssessment`."""

    def __init__(self, inner: RiskAssessor) -> None:
        self.inner = inner

    def before_start(self, context: PaymentStartContext) -> RiskAssessment:
        return _normalized(self.inner.before_start(context))

    def after_report(self, context: PaymentReportedContext) -> RiskAssessment:
        return _normalized(self.inner.after_report(context))


def risk_assessor() -> RiskAssessor:
    """The assessor ``PAYMENT_RISK_ASSESSOR`` names, its answers normalized."""
    assessor: RiskAssessor = import_string(settings.PAYMENT_RISK_ASSESSOR)
    return _Normalizing(assessor)
