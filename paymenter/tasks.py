"""Celery tasks of the platform: thin wrappers that load by id and call one service.

Delivery retries live in the outbox row (``attempts``/``next_attempt_at``, see
``paymenter.outbox_delivery``), not in Celery: a task only retries, a few times, when the
database itself is briefly unreachable. Whatever still fails is picked up by the relay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError

from paymenter.idempotency import idempotency_records_purge
from paymenter.outbox_delivery import outbox_deliver_message, outbox_relay_due

# transient infrastructure failures worth a quick Celery-level retry
_TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)


_P = ParamSpec("_P")


def _platform_task(**options: Any) -> Callable[[Callable[_P, None]], Task[_P, None]]:
    """``shared_task`` with what every task here needs (STYLE.md): acknowledged after the
    work, re-queued if the worker dies, no result stored, bounded jittered retries on
    transient database errors only."""
    return shared_task(
        acks_late=True,
        reject_on_worker_lost=True,
        ignore_result=True,
        autoretry_for=_TRANSIENT_DB_ERRORS,
        retry_jitter=True,
        **options,
    )


@_platform_task(
    max_retries=3,
    retry_backoff=2,
    retry_backoff_max=60,
    soft_time_limit=60,  # the HTTP timeout (O2S_CALLBACK_TIMEOUT_SECONDS, 10 s) plus database work
    time_limit=90,
)
def outbox_deliver(message_id: int) -> None:
    outbox_deliver_message(message_id=message_id)


@_platform_task(max_retries=2, retry_backoff=5, soft_time_limit=50, time_limit=60)
def outbox_relay() -> None:
    outbox_relay_due()


@_platform_task(max_retries=2, retry_backoff=30, soft_time_limit=240, time_limit=300)
def idempotency_purge() -> None:
    """Forget stored API responses past ``IDEMPOTENCY_RETENTION_HOURS`` (hourly, beat)."""
    idempotency_records_purge()
