"""Celery tasks of the payments ledger: thin wrappers (webhook events go through the outbox)."""

from __future__ import annotations

from gateways.services import payment_attempts_reconcile
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
