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


@dataclass(frozen=True)
class PaymentStartContext:
    """What is known before a payment session is created."""

    invoice_id: uuid.UUID
    customer_id: uuid.UUID
    gateway: GatewayCode
    amount: Money
    source_ip: str


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


def risk_assessor() -> RiskAssessor:
    assessor: RiskAssessor = import_string(settings.PAYMENT_RISK_ASSESSOR)
    return assessor
