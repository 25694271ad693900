"""The backoff schedule and what a handler's failures turn into."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction

from events.delivery import outbox_deliver_message, outbox_retry_delay
from events.subscriptions import SUBSCRIPTIONS
from paymenter import rls
from paymenter.models import OutboxMessage, OutboxStatus
from paymenter.outbox import Subscription, outbox_enqueue
from tests.callbacks.conftest import TEST_PRINCIPAL


@pytest.mark.parametrize(
    ("attempts", "nominal"),
    [(1, 30), (2, 60), (3, 120), (10, 15_360), (11, 21_600), (40, 21_600), (10_000, 21_600)],
)
def test_delay_doubles_up_to_the_cap_with_equal_jitter(attempts: int, nominal: int, settings: Any) -> None:
    settings.OUTBOX_RETRY_BASE_SECONDS = 30
    settings.OUTBOX_RETRY_MAX_DELAY_SECONDS = 21_600

    delays = [outbox_retry_delay(attempts=attempts) for _ in range(50)]

    assert all(timedelta(seconds=nominal / 2) <= delay <= timedelta(seconds=nominal) for delay in delays)
    assert len(set(delays)) > 1  # jittered


def _crash(message: OutboxMessage) -> None:
    raise KeyError(message.topic)


# the project's subscriptions plus a consumer whose handler crashes (settings.OUTBOX_SUBSCRIPTIONS)
CRASHING_SUBSCRIPTIONS = (*SUBSCRIPTIONS, Subscription(topic="test.crash", event_types=frozenset(), handler=_crash))


@pytest.mark.committed
@pytest.mark.parametrize(
    ("handler", "expected_error"),
    [(None, "no handler registered for topic 'test.crash'"), ("crash", "handler error: KeyError")],
)
def test_a_missing_or_crashing_handler_is_a_retried_failure(
    handler: str | None, expected_error: str, committed_db: None, settings: Any
) -> None:
    if handler:
        settings.OUTBOX_SUBSCRIPTIONS = f"{__name__}.CRASHING_SUBSCRIPTIONS"
    with rls.acting_as(TEST_PRINCIPAL), transaction.atomic():
        message = outbox_enqueue(topic="test.crash", payload={"n": 1})

    assert outbox_deliver_message(message_id=message.id) == OutboxStatus.PENDING

    with rls.acting_as(TEST_PRINCIPAL):
        row = OutboxMessage.objects.get(id=message.id)
        OutboxMessage.objects.filter(id=message.id).update(status=OutboxStatus.DEAD)  # leave nothing due behind
    assert (row.status, row.attempts, row.last_error) == (OutboxStatus.PENDING, 1, expected_error)
