"""Writes of the payments ledger, by sub-domain: ``attempts`` (starting a payment),
``ledger`` (recording what a gateway took), ``refunds`` (money given back, credit notes),
``disputes`` (disputes, reversals, fraud warnings), ``reviews`` (staff's
decision on a payment the fraud rules held), ``inbox`` (webhook deliveries),
``reconciliation`` (asking the gateway about what the webhooks did not settle; capturing
approved payments) and ``summaries`` (the daily per-gateway summary)."""

from gateways.services.attempts import payment_attempt_get, payment_attempt_start
from gateways.services.disputes import DisputeSettlement, disputes_settle, fraud_warning_record
from gateways.services.inbox import (
    WEBHOOK_TOPIC,
    webhook_event_deliver,
    webhook_event_process,
    webhook_event_reprocess,
    webhook_event_store,
)
from gateways.services.ledger import Settlement, payment_held_resolve, payment_receive, payment_settle
from gateways.services.reconciliation import (
    payment_attempt_confirm,
    payment_attempts_reconcile,
    payment_report_settle,
)
from gateways.services.refunds import (
    RefundSettlement,
    refund_automatic,
    refund_request,
    refunds_pending_retry,
    refunds_settle,
)
from gateways.services.reviews import payment_review_approve, payment_review_reject

__all__ = [
    "WEBHOOK_TOPIC",
    "DisputeSettlement",
    "RefundSettlement",
    "Settlement",
    "disputes_settle",
    "fraud_warning_record",
    "payment_attempt_confirm",
    "payment_attempt_get",
    "payment_attempt_start",
    "payment_attempts_reconcile",
    "payment_held_resolve",
    "payment_receive",
    "payment_report_settle",
    "payment_review_approve",
    "payment_review_reject",
    "payment_settle",
    "refund_automatic",
    "refund_request",
    "refunds_pending_retry",
    "refunds_settle",
    "webhook_event_deliver",
    "webhook_event_process",
    "webhook_event_reprocess",
    "webhook_event_store",
]
