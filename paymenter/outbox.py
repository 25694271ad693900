"""The transactional outbox: record work in PostgreSQL, then let workers do it.

Two ways in, both inside the transaction of the change that causes the work, so a message
exists if and only if the change committed:

* :func:`domain_event_record` - a domain service says *what happened* (``invoice.paid``).
  Each subscriber of that event type gets a message of its own (its ``topic``), so one
  failing consumer never blocks or duplicates another. Who subscribes is not the domain's
  business: the table is named by ``settings.OUTBOX_SUBSCRIPTIONS`` (like ``ROOT_URLCONF``)
  and lives in the channel layer (``events/subscriptions.py``).
* :func:`outbox_enqueue` - one message for one topic (the primitive under the above).

Delivery, retries, dead-lettering and the relay live in ``events.delivery``; the worker
reaches a message's handler through the same subscription table. See docs/outbox.md.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from paymenter.celery import app as celery_app
from paymenter.models import OutboxMessage

logger = logging.getLogger(__name__)

DELIVER_TASK = "events.tasks.outbox_deliver"
"""The Celery task that delivers one message (``events/tasks.py`` declares it by this name)."""

OutboxHandler = Callable[[OutboxMessage], None]
"""Delivers one message; returns on success, raises :class:`OutboxHandlerError` on failure
(anything else is treated as a handler bug: logged, and retried the same way)."""


class OutboxHandlerError(Exception):
    """A handler's failure to deliver: the message is retried later (or dead-lettered).

    The message is stored as ``last_error`` and shown in the admin: keep it short and never
    put secrets, signatures or URLs with credentials in it.
    """


@dataclass(frozen=True)
class Subscription:
    """One consumer of domain events: the event types it wants, the outbox topic of its
    messages, and the handler the worker calls with each of them."""

    topic: str
    event_types: frozenset[str]
    handler: OutboxHandler


class OutboxOutsideTransactionError(RuntimeError):
    """Outbox rows must be written in the transaction of the change they follow."""


def subscriptions() -> Sequence[Subscription]:
    """The subscription table named by ``settings.OUTBOX_SUBSCRIPTIONS``."""
    table: Sequence[Subscription] = import_string(settings.OUTBOX_SUBSCRIPTIONS)
    return table


def domain_event_subscribed(event_type: str) -> bool:
    """Whether anyone subscribes to ``event_type`` (so a caller can skip building its data)."""
    return any(event_type in item.event_types for item in subscriptions())


def subscription_for(topic: str) -> Subscription | None:
    return next((item for item in subscriptions() if item.topic == topic), None)


def domain_event_envelope(*, event_id: uuid.UUID, event_type: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """What a subscriber's message carries: ``{"id", "type", "created_at", "data"}``.

    ``data`` is a snapshot taken in the transaction of the change, so a consumer sees the
    state the event produced, not whatever the row holds when it is delivered. This is
    also the exact body of an O2S callback (docs/callbacks.md).
    """
    return {
        "id": f"evt_{event_id.hex}",
        "type": event_type,
        "created_at": timezone.now().isoformat().replace("+00:00", "Z"),
        "data": dict(data),
    }


def domain_event_record(
    *,
    event_type: str,
    data: Mapping[str, Any],
    ordering_key: str = "",
    customer_id: uuid.UUID | None = None,
) -> list[OutboxMessage]:
    """Record that ``event_type`` happened: one message per subscriber, in the caller's
    transaction. Returns the messages (none when nobody subscribes to the event)."""
    if not connection.in_atomic_block:
        raise OutboxOutsideTransactionError(event_type)
    messages: list[OutboxMessage] = []
    for subscription in subscriptions():
        if event_type not in subscription.event_types:
            continue
        event_id = uuid.uuid4()
        messages.append(
            outbox_enqueue(
                topic=subscription.topic,
                payload=domain_event_envelope(event_id=event_id, event_type=event_type, data=data),
                ordering_key=ordering_key,
                customer_id=customer_id,
                event_id=event_id,
            )
        )
    return messages


def outbox_enqueue(
    *,
    topic: str,
    payload: Mapping[str, Any],
    ordering_key: str = "",
    customer_id: uuid.UUID | None = None,
    event_id: uuid.UUID | None = None,
) -> OutboxMessage:
    if not connection.in_atomic_block:
        raise OutboxOutsideTransactionError(topic)
    message = OutboxMessage.objects.create(
        event_id=event_id or uuid.uuid4(),
        topic=topic,
        payload=dict(payload),
        ordering_key=ordering_key,
        customer_id=customer_id,
        next_attempt_at=timezone.now(),
    )
    transaction.on_commit(functools.partial(outbox_nudge, message.id))
    return message


def outbox_nudge(message_id: int, *, countdown: float | None = None) -> None:
    """Best effort: ask a worker to deliver ``message_id`` (after ``countdown`` seconds).

    Published by task name, so the kernel needs no import of the worker. Publishing does
    not retry (``retry=False``): this runs in request threads right after a commit, and a
    broker outage must cost a failed connect, not a stalled request. The row stays pending
    and the relay nudges it again.
    """
    try:
        celery_app.send_task(DELIVER_TASK, args=(message_id,), countdown=countdown, retry=False)
    except Exception:  # noqa: BLE001 - any broker failure only delays delivery; the relay covers it
        logger.warning("outbox nudge failed; the relay will deliver message %s", message_id)
