"""Writes of the payments ledger, by sub-domain: ``attempts`` (starting a payment),
``ledger`` (recording what a gateway took), ``inbox`` (webhook deliveries) and
``reconciliation`` (asking the gateway about what the webhooks did not settle)."""

from gateways.services.attempts import payment_attempt_get, payment_attempt_start
from gateways.services.inbox import (
    WEBHOOK_TOPIC,
    webhook_event_deliver,
    webhook_event_process,
    webhook_event_reprocess,
    webhook_event_store,
)
from gateways.services.ledger import Settlement, payment_held_resolve, payment_receive, payment_settle
from gateways.services.reconciliation import payment_attempt_confirm, payment_attempts_reconcile

__all__ = [
    "WEBHOOK_TOPIC",
    "Settlement",
    "payment_attempt_confirm",
    "payment_attempt_get",
    "payment_attempt_start",
    "payment_attempts_reconcile",
    "payment_held_resolve",
    "payment_receive",
    "payment_settle",
    "webhook_event_deliver",
    "webhook_event_process",
    "webhook_event_reprocess",
    "webhook_event_store",
]
