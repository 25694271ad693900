"""Settling attempts the webhooks did not: the customer's return, and the periodic job.

Both ask the gateway (``payment_fetch``) and settle through the ledger exactly as a
webhook does, so a lost, late or out-of-order webhook never leaves a paid invoice open,
and a customer who returns before the webhook sees the truth.

A payment the customer approved but the gateway has not taken yet (PayPal: an ``APPROVED``
order, ``GatewayPayment.capturable``) is captured here, server-side, by whichever path sees
it first - the return page, the ``CHECKOUT.ORDER.APPROVED`` webhook or this job - and only
when the approved amount and currency are exactly what our attempt asked for, the
invoice still owes at least that and its checksum verifies (:func:`payment_report_settle`). Capture is idempotent at
the gateway (the attempt's id is the request id), so two paths capturing at once take the
money once.

The periodic job also retries staff refunds the gateway could not be asked about
(``gateways.services.refunds.refunds_pending_retry``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from audit.unit_of_work import unit_of_work
from gateways.base import GatewayPayment, GatewayPaymentStatus, GatewayRequestError, GatewayUnavailableError
from gateways.models import AttemptStatus, PaymentAttempt
from gateways.registry import gateway_for
from gateways.services.ledger import PAYABLE, PaymentInvoiceMismatchError, Settlement, payment_settle
from gateways.services.refunds import refunds_pending_retry
from invoices.models import Invoice
from invoices.services import invoice_checksum_verify
from paymenter.errors import PaymenterError
from paymenter.principals import Principal, SystemPrincipal

logger = logging.getLogger(__name__)

RECONCILE_PRINCIPAL = SystemPrincipal(label="worker:payment_reconciliation")


def payment_attempt_confirm(*, principal: Principal, attempt: PaymentAttempt, recorded_by: str) -> Settlement:
    """Ask the gateway how ``attempt`` stands and settle it. An attempt already settled is
    answered from the ledger without a call. Raises ``GatewayUnavailableError`` when the
    gateway cannot be asked (the caller shows "not confirmed yet", never "paid")."""
    if attempt.status != AttemptStatus.OPEN:
        status = {
            AttemptStatus.SUCCEEDED: GatewayPaymentStatus.SUCCEEDED,
            AttemptStatus.FAILED: GatewayPaymentStatus.FAILED,
        }.get(AttemptStatus(attempt.status), GatewayPaymentStatus.CANCELED)
        return Settlement(status=status, attempt_id=attempt.id)
    if not attempt.gateway_session_id:
        return Settlement(status=GatewayPaymentStatus.PENDING, attempt_id=attempt.id)
    reported = gateway_for(attempt.gateway).payment_fetch(session_id=attempt.gateway_session_id)
    if reported is None:
        return Settlement(status=GatewayPaymentStatus.PENDING, attempt_id=attempt.id)
    return payment_report_settle(principal=principal, reported=reported, recorded_by=recorded_by)


def payment_report_settle(*, principal: Principal, reported: GatewayPayment, recorded_by: str) -> Settlement:
    """Settle a fetched-back payment, capturing it first when it is ``capturable`` and may be
    taken (see the module doc); one that may not is left uncaptured and its attempt failed."""
    if reported.capturable:
        reported = _capture(principal=principal, reported=reported)
    return payment_settle(principal=principal, reported=reported, recorded_by=recorded_by)


def _capture_refusal(*, principal: Principal, attempt: PaymentAttempt | None, reported: GatewayPayment) -> str:
    """Why an approved payment must not be captured ("" when it may). An invoice whose
    checksum fails takes no money: the mismatch is recorded and alerted, nothing captured."""
    if attempt is None:
        return "no attempt of ours"
    if attempt.status != AttemptStatus.OPEN:
        return f"attempt is {attempt.status}"
    if reported.amount.currency != attempt.currency or reported.amount.minor != attempt.amount_minor:
        return "amount_mismatch"
    invoice = Invoice.objects.filter(pk=attempt.invoice_id).first()
    if invoice is None or invoice.status not in PAYABLE or invoice.amount_due_minor < attempt.amount_minor:
        return "invoice_not_payable"
    if not invoice_checksum_verify(principal=principal, invoice=invoice, attempted="capture"):
        return "invoice_checksum_mismatch"
    return ""


def _capture(*, principal: Principal, reported: GatewayPayment) -> GatewayPayment:
    with unit_of_work(principal):
        attempt = PaymentAttempt.objects.filter(
            gateway=reported.gateway, gateway_session_id=reported.session_id
        ).first()
        refusal = (
            _capture_refusal(principal=principal, attempt=attempt, reported=reported)
            if reported.session_id
            else "no session"
        )
        if refusal and attempt is not None and attempt.status == AttemptStatus.OPEN:
            logger.error("%s session %s approved but not captured: %s", reported.gateway, reported.session_id, refusal)
            PaymentAttempt.objects.filter(pk=attempt.pk, status=AttemptStatus.OPEN).update(
                status=AttemptStatus.FAILED,
                settled_at=timezone.now(),
                failure_reason=refusal,
                gateway_status=reported.gateway_status,
            )
    if refusal or attempt is None:
        return reported
    return gateway_for(reported.gateway).payment_capture(
        session_id=reported.session_id, idempotency_key=f"paymenter-capture-{attempt.id}"
    )


@dataclass
class ReconciliationReport:
    checked: int = 0
    settled: list[str] = field(default_factory=list)
    """Attempt ids that left ``open`` in this run."""
    expired_unanswered: int = 0
    refunds_retried: int = 0
    errors: list[str] = field(default_factory=list)


def payment_attempts_reconcile(*, limit: int = 200) -> ReconciliationReport:
    """Settle open attempts older than ``PAYMENT_RECONCILE_AFTER_SECONDS`` (beat task).

    An attempt the gateway never answered (no session) past the session lifetime is
    expired: nobody can have paid it.
    """
    report = ReconciliationReport()
    now = timezone.now()
    cutoff = now - timedelta(seconds=int(settings.PAYMENT_RECONCILE_AFTER_SECONDS))
    with unit_of_work(RECONCILE_PRINCIPAL):
        report.expired_unanswered = PaymentAttempt.objects.filter(
            status=AttemptStatus.OPEN,
            gateway_session_id="",
            created_at__lt=now - timedelta(seconds=int(settings.PAYMENT_SESSION_TTL_SECONDS)),
        ).update(status=AttemptStatus.EXPIRED, settled_at=now, gateway_status="never started")
        due = list(
            PaymentAttempt.objects.filter(status=AttemptStatus.OPEN, created_at__lt=cutoff)
            .exclude(gateway_session_id="")
            .order_by("last_checked_at", "created_at")[:limit]
        )
    for attempt in due:
        report.checked += 1
        try:
            settlement = payment_attempt_confirm(
                principal=RECONCILE_PRINCIPAL, attempt=attempt, recorded_by="reconciliation"
            )
        except (GatewayUnavailableError, GatewayRequestError, PaymenterError, PaymentInvoiceMismatchError) as exc:
            report.errors.append(f"{attempt.id}: {exc}")
            logger.warning("reconciliation of attempt %s failed: %s", attempt.id, exc)
            continue
        with unit_of_work(RECONCILE_PRINCIPAL):
            PaymentAttempt.objects.filter(pk=attempt.pk).update(last_checked_at=timezone.now())
        if settlement.status is not GatewayPaymentStatus.PENDING:
            report.settled.append(str(attempt.id))
    report.refunds_retried = refunds_pending_retry()
    return report
