"""The daily reconciliation summary: per gateway, what we recorded vs. what it reports.

Once a day (beat task ``gateways.tasks.payment_daily_summary``) each enabled gateway's
payments over the last full UTC day are compared with the gateway's own report
(``Gateway.payments_report``), by transaction id and amount. A difference is flagged for
staff (the admin's Daily summaries, and an ERROR log line): a payment the gateway took that
we never recorded (a lost webhook the attempt reconciliation did not catch, a payment made
outside our sessions), one we recorded that the gateway does not report, or the same
transaction with another amount or currency.

Day boundaries differ between the two sides (the gateway dates a payment when it was
created, we when we recorded it), so before flagging, a payment missing on one side is
looked up beyond the day: recorded here at any time, or fetched back from the gateway.
Bank transfer reports nothing (``None``): its summary lists what was recorded.
Re-running a day replaces its summary.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from audit.unit_of_work import unit_of_work
from gateways.base import GatewayPayment, GatewayPaymentStatus, GatewayRequestError, GatewayUnavailableError
from gateways.models import DailySummary, Payment
from gateways.registry import gateway_for, gateways_enabled
from paymenter.principals import SystemPrincipal

logger = logging.getLogger(__name__)

SUMMARY_PRINCIPAL = SystemPrincipal(label="worker:daily_summary")


def _totals(items: list[tuple[str, int]]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for currency, minor in items:
        totals[currency] += minor
    return dict(totals)


def _differences(
    *, code: str, recorded: dict[str, Payment], reported: dict[str, GatewayPayment]
) -> list[dict[str, Any]]:
    differences: list[dict[str, Any]] = []
    for transaction_id, theirs in reported.items():
        ours = recorded.get(transaction_id)
        if ours is None:
            with unit_of_work(SUMMARY_PRINCIPAL):
                ours = Payment.objects.filter(gateway=code, transaction_id=transaction_id).first()
            if ours is None:
                differences.append(
                    {
                        "kind": "not_recorded_here",
                        "transaction_id": transaction_id,
                        "amount_minor": theirs.amount.minor,
                        "currency": theirs.amount.currency,
                    }
                )
                continue
        if ours.amount_minor != theirs.amount.minor or ours.currency != theirs.amount.currency:
            differences.append(
                {
                    "kind": "amount_differs",
                    "transaction_id": transaction_id,
                    "recorded_minor": ours.amount_minor,
                    "recorded_currency": ours.currency,
                    "reported_minor": theirs.amount.minor,
                    "reported_currency": theirs.amount.currency,
                }
            )
    gateway = gateway_for(code)
    for transaction_id, ours in recorded.items():
        if transaction_id in reported:
            continue
        try:
            fetched = gateway.payment_fetch(transaction_id=transaction_id)
        except GatewayRequestError:  # the gateway does not know it
            fetched = None
        if fetched is None or fetched.status is not GatewayPaymentStatus.SUCCEEDED:
            differences.append(
                {
                    "kind": "not_reported_by_gateway",
                    "transaction_id": transaction_id,
                    "amount_minor": ours.amount_minor,
                    "currency": ours.currency,
                }
            )
    return differences


def payment_daily_summary(*, code: str, period_end: datetime) -> DailySummary:
    """Summarise gateway ``code`` over the day ending at ``period_end`` (replacing an
    earlier summary of that day). Raises ``GatewayUnavailableError`` when it cannot ask."""
    period_start = period_end - timedelta(days=1)
    with unit_of_work(SUMMARY_PRINCIPAL):
        recorded = {
            payment.transaction_id: payment
            for payment in Payment.objects.filter(gateway=code, created_at__gte=period_start, created_at__lt=period_end)
        }
    report = gateway_for(code).payments_report(since=period_start, until=period_end)
    reported = {item.transaction_id: item for item in report or []}
    differences = [] if report is None else _differences(code=code, recorded=recorded, reported=reported)
    with unit_of_work(SUMMARY_PRINCIPAL):
        summary, _ = DailySummary.objects.update_or_create(
            gateway=code,
            period_start=period_start,
            defaults={
                "period_end": period_end,
                "recorded_count": len(recorded),
                "recorded_minor": _totals([(p.currency, p.amount_minor) for p in recorded.values()]),
                "reported_count": None if report is None else len(reported),
                "reported_minor": _totals([(p.amount.currency, p.amount.minor) for p in reported.values()]),
                "differences": differences,
            },
        )
    if differences:
        logger.error(
            "daily summary %s %s: %d difference(s) between our ledger and the gateway, for staff",
            code,
            period_start.date(),
            len(differences),
        )
    return summary


def payment_daily_summaries(*, period_end: datetime | None = None) -> list[DailySummary]:
    """The summary of every enabled gateway for the day ending at ``period_end`` (default:
    today 00:00 UTC, i.e. yesterday). A gateway that cannot be asked is logged and skipped
    (the next run of that day, by hand or tomorrow's, fills it in)."""
    if period_end is None:
        period_end = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    summaries: list[DailySummary] = []
    for code in gateways_enabled():
        try:
            summaries.append(payment_daily_summary(code=code, period_end=period_end))
        except (GatewayUnavailableError, GatewayRequestError) as exc:
            logger.warning("daily summary %s: gateway could not be asked (%s)", code, exc)
    return summaries
