"""The transactional outbox: record work in PostgreSQL, then let workers do it.

``outbox_enqueue`` must run inside the transaction of the change that causes the work,
so the message exists if and only if the change committed. Delivery, retries and the
relay live in ``paymenter.outbox_delivery`` and ``paymenter.tasks``; see docs/outbox.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from paymenter.models import OutboxMessage


class OutboxOutsideTransactionError(RuntimeError):
    """Outbox rows must be written in the transaction of the change they follow."""


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
    transaction.on_commit(lambda: _nudge(message.id))
    return message


def _nudge(message_id: int) -> None:
    """Best effort: hand the message to a worker now. If the broker is down the row
    stays pending and the periodic relay picks it up later."""
    from paymenter.outbox_delivery import outbox_nudge  # noqa: PLC0415 - avoids import cycle

    outbox_nudge(message_id)
