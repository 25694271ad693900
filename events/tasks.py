"""Celery tasks of the outbox worker: thin wrappers around ``events.delivery``.

Delivery retries live in the outbox row (``attempts``/``next_attempt_at``), not in Celery:
a task only retries, a few times, when the database itself is briefly unreachable.
Whatever still fails is picked up by the relay.
"""

from __future__ import annotations

from events.delivery import outbox_deliver_message, outbox_relay_due
from paymenter.celery import platform_task
from paymenter.outbox import DELIVER_TASK


@platform_task(
    name=DELIVER_TASK,  # the kernel's outbox nudges it by name (paymenter/outbox.py)
    max_retries=3,
    retry_backoff=2,
    retry_backoff_max=60,
    soft_time_limit=60,  # the HTTP timeout (O2S_CALLBACK_TIMEOUT_SECONDS, 10 s) plus database work
    time_limit=90,
)
def outbox_deliver(message_id: int) -> None:
    outbox_deliver_message(message_id=message_id)


@platform_task(max_retries=2, retry_backoff=5, soft_time_limit=50, time_limit=60)
def outbox_relay() -> None:
    outbox_relay_due()
