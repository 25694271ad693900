"""Celery tasks of the audit trail (thin: call one service)."""

from __future__ import annotations

from audit.refusals import refusals_flush as refusals_flush_service
from paymenter.celery import platform_task


@platform_task(max_retries=2, retry_backoff=5, soft_time_limit=50, time_limit=60)
def refusals_flush() -> None:
    """Audit the closed windows of refused requests (every REFUSAL_WINDOW_SECONDS, beat)."""
    refusals_flush_service()
