"""Delivery of outbox messages (claim, handle, retry, dead-letter) and the relay.

Placeholder-free contract for the first cut: ``outbox_nudge`` enqueues the delivery task
and swallows broker errors (the relay is the safety net).
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def outbox_nudge(message_id: int) -> None:
    from paymenter.tasks import outbox_deliver  # noqa: PLC0415 - Celery app loads late

    try:
        outbox_deliver.delay(message_id)
    except Exception:  # noqa: BLE001 - any broker failure only delays delivery
        logger.warning("outbox nudge failed; the relay will deliver message %s", message_id)
