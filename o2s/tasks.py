"""Celery tasks of the O2S integration (thin: call one service)."""

from __future__ import annotations

from o2s.idempotency import idempotency_records_purge
from paymenter.celery import platform_task


@platform_task(max_retries=2, retry_backoff=30, soft_time_limit=240, time_limit=300)
def idempotency_purge() -> None:
    """Forget stored API responses past ``IDEMPOTENCY_RETENTION_HOURS`` (hourly, beat)."""
    idempotency_records_purge()
