"""Celery tasks of the payments ledger: thin wrappers (webhook events go through the outbox)."""

from __future__ import annotations

from gateways.services import payment_attempts_reconcile
from gateways.services.summaries import payment_daily_summaries
from paymenter.celery import platform_task


@platform_task(
    name="gateways.tasks.payment_attempts_reconcile",
    max_retries=2,
    retry_backoff=5,
    soft_time_limit=240,
    time_limit=300,
)
def payment_attempts_reconcile_task() -> None:
    payment_attempts_reconcile()


@platform_task(
    name="gateways.tasks.payment_daily_summary",
    max_retries=2,
    retry_backoff=60,
    soft_time_limit=600,
    time_limit=660,
)
def payment_daily_summary_task() -> None:
    payment_daily_summaries()
