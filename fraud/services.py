"""Writes of the fraud app: rule configuration changes, customer risk flags, and the outbox
handler that turns disputes and early fraud warnings into customer risk (docs/fraud.md)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import audit_record
from audit.unit_of_work import unit_of_work
from fraud.models import CustomerRiskFlag, RuleConfig
from fraud.rules import RULES, rule_config_parse
from paymenter.models import OutboxMessage
from paymenter.principals import Principal, SystemPrincipal

logger = logging.getLogger(__name__)

RISK_SIGNAL_TOPIC = "fraud.risk_signal"
RISK_SIGNAL_EVENT_TYPES = frozenset({"invoice.disputed", "payment.fraud_warning"})
"""The domain events that raise a customer's risk (subscribed in events/subscriptions.py)."""
RISK_SIGNAL_PRINCIPAL = SystemPrincipal(label="worker:fraud-risk")
RISK_SIGNAL_REASONS = {
    "invoice.disputed": "a payment of invoice {number} was disputed",
    "payment.fraud_warning": "an early fraud warning about a payment of invoice {number}",
}


def rule_config_update(
    *, principal: Principal, name: str, enabled: bool, config: Any, user: AbstractBaseUser | None = None
) -> RuleConfig:
    """Change rule ``name``: validated by the rule's own config class (``RuleConfigError``
    when unusable, nothing written), stored normalised, audited with before and after."""
    parsed = rule_config_parse(name, config)
    with unit_of_work(principal):
        row = RuleConfig.objects.select_for_update().filter(name=name).first()
        if row is None:
            row = RuleConfig(name=name, enabled=True, config=RULES[name][1]().to_json())
        before = {"enabled": row.enabled, "config": row.config} if row.pk else None
        row.enabled = enabled
        row.config = parsed.to_json()
        row.updated_by = user.get_username() if user is not None else str(getattr(principal, "label", ""))
        row.save()
        audit_record(
            action=AuditAction.FRAUD_RULE_CHANGED,
            object_type="fraud_rule",
            object_id=name,
            payload={"before": before, "after": {"enabled": row.enabled, "config": row.config}},
        )
    return row


def customer_risk_raise(*, customer_id: uuid.UUID, reason: str, source_event_id: str) -> CustomerRiskFlag | None:
    """Flag the customer so their next payments go to review (``CustomerRiskRule``); once
    per source event: a redelivered event changes nothing and returns ``None``."""
    with unit_of_work(RISK_SIGNAL_PRINCIPAL):
        try:
            with transaction.atomic():
                flag = CustomerRiskFlag.objects.create(
                    customer_id=customer_id, reason=reason[:255], source_event_id=source_event_id
                )
        except IntegrityError:
            if CustomerRiskFlag.objects.filter(source_event_id=source_event_id).exists():
                return None
            raise
        audit_record(
            action=AuditAction.CUSTOMER_RISK_RAISED,
            object_type="customer",
            object_id=str(customer_id),
            customer_id=customer_id,
            payload={"reason": flag.reason, "source_event_id": source_event_id, "flag_id": flag.pk},
        )
    return flag


def customer_risk_clear(*, principal: Principal, flag_id: int, user: AbstractBaseUser | None = None) -> bool:
    """Staff clear a risk flag (the customer's payments no longer go to review for it);
    ``False`` when it was already cleared."""
    with unit_of_work(principal):
        flag = CustomerRiskFlag.objects.select_for_update().get(pk=flag_id)
        if flag.cleared_at is not None:
            return False
        flag.cleared_at = timezone.now()
        flag.cleared_by_id = user.pk if user is not None else None
        flag.save(update_fields=["cleared_at", "cleared_by"])
        audit_record(
            action=AuditAction.CUSTOMER_RISK_CLEARED,
            object_type="customer",
            object_id=str(flag.customer_id),
            customer_id=flag.customer_id,
            payload={"reason": flag.reason, "source_event_id": flag.source_event_id, "flag_id": flag.pk},
        )
    return True


def risk_signal_deliver(message: OutboxMessage) -> None:
    """The outbox handler of :data:`RISK_SIGNAL_TOPIC`: a dispute or an early fraud warning
    raises the customer's risk (idempotent per event: redelivery is harmless)."""
    payload = message.payload
    event_type = str(payload.get("type", ""))
    data = payload.get("data") or {}
    customer_id = data.get("customer_id")
    if event_type not in RISK_SIGNAL_EVENT_TYPES or not customer_id:
        logger.error("risk signal %s of type %r without a customer: ignored", payload.get("id"), event_type)
        return
    reason = RISK_SIGNAL_REASONS[event_type].format(number=data.get("invoice_number") or data.get("invoice_id", "?"))
    customer_risk_raise(customer_id=uuid.UUID(str(customer_id)), reason=reason, source_event_id=str(payload["id"]))
