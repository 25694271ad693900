"""Delivery of outbox messages: claim, handle, retry with backoff, dead-letter; and the relay.

The worker side of the kernel's outbox (``paymenter/outbox.py``). It sits in the channel
layer because it audits (dead-lettering, redelivery) and calls the channels' handlers.

The outbox row is the source of truth (docs/outbox.md). A Celery task per message is only a
nudge: ``outbox_deliver_message`` is idempotent and may be called any number of times, by
any number of workers and relays at once, for the same message.

Guarantees and how they are kept:

* **No double delivery by concurrent workers.** The row is claimed with
  ``SELECT ... FOR NO KEY UPDATE SKIP LOCKED`` and the lock is held while the handler runs
  (the HTTP timeout bounds it); whoever does not get the lock does nothing. Delivery is
  still *at least once*: a worker that dies after the receiver answered 2xx but before the
  commit leaves the row pending, so receivers dedupe by event id.
* **Per-key order, per subscriber.** A message is handled only when no pending message of
  the same topic with the same ``ordering_key`` and a smaller id exists (a failing O2S
  callback never holds back a receipt e-mail). After a message is delivered (or dead) the next
  pending one of its key is nudged. A dead message no longer blocks later ones: an event
  that could not be delivered for the whole retry window must not hold back the rest.
* **Nothing is lost.** Nudges are best effort; ``outbox_relay_due`` (Celery beat) nudges
  every due message whose nudge the broker lost.
"""

from __future__ import annotations

import functools
import logging
import secrets
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import audit_record
from audit.unit_of_work import unit_of_work
from paymenter import rls
from paymenter.models import OutboxMessage, OutboxStatus
from paymenter.outbox import OutboxHandler, OutboxHandlerError, outbox_nudge, subscription_for
from paymenter.principals import Principal, SystemPrincipal

logger = logging.getLogger(__name__)

WORKER_PRINCIPAL = SystemPrincipal(label="worker:outbox")
LAST_ERROR_MAX_LENGTH = 500
DEFAULT_RELAY_LIMIT = 500


def handler_for(topic: str) -> OutboxHandler | None:
    """The handler of ``topic``, from the subscription table (``events/subscriptions.py``)."""
    subscription = subscription_for(topic)
    return subscription.handler if subscription is not None else None


# --- Nudges -------------------------------------------------------------------------------


def _nudge_next_of_key(*, topic: str, ordering_key: str, after_id: int) -> None:
    """The message after ``after_id`` in its topic and key may go now: nudge it (best effort)."""
    if not ordering_key:
        return
    with rls.acting_as(WORKER_PRINCIPAL):
        next_id = (
            OutboxMessage.objects.filter(
                topic=topic, ordering_key=ordering_key, status=OutboxStatus.PENDING, id__gt=after_id
            )
            .order_by("id")
            .values_list("id", flat=True)
            .first()
        )
    if next_id is not None:
        outbox_nudge(next_id)


# --- Retry schedule -----------------------------------------------------------------------


def outbox_retry_delay(*, attempts: int) -> timedelta:
    """Delay before the next attempt after ``attempts`` failed ones (attempts >= 1).

    Exponential (``base * 2**(attempts-1)``, capped at ``OUTBOX_RETRY_MAX_DELAY_SECONDS``)
    with "equal jitter": a uniformly random point in the upper half of that delay, so
    retries of many messages after one outage spread out but never come back sooner than
    half the nominal delay.
    """
    base = float(settings.OUTBOX_RETRY_BASE_SECONDS)
    cap = float(settings.OUTBOX_RETRY_MAX_DELAY_SECONDS)
    nominal = min(cap, base * 2 ** min(max(attempts, 1) - 1, 40))
    return timedelta(seconds=nominal / 2 + secrets.SystemRandom().uniform(0, nominal / 2))


def _deadline(message: OutboxMessage) -> datetime:
    return message.created_at + timedelta(seconds=float(settings.OUTBOX_MAX_AGE_SECONDS))


# --- Delivery -----------------------------------------------------------------------------


def _has_pending_predecessor(message: OutboxMessage) -> bool:
    """An earlier pending message of the same subscriber (topic) and key: wait for it. Other
    subscribers' messages of the key never hold this one back (docs/outbox.md)."""
    if not message.ordering_key:
        return False
    return OutboxMessage.objects.filter(
        topic=message.topic, ordering_key=message.ordering_key, status=OutboxStatus.PENDING, id__lt=message.id
    ).exists()


def _run_handler(message: OutboxMessage) -> str:
    """Run the topic's handler; returns "" on success or the (short) failure reason."""
    handler = handler_for(message.topic)
    if handler is None:
        return f"no handler registered for topic {message.topic!r}"
    try:
        handler(message)
    except OutboxHandlerError as exc:
        return str(exc) or type(exc).__name__
    except Exception as exc:  # a handler bug must back off and dead-letter, not hot-loop
        logger.exception("outbox handler for %s crashed on message %s", message.topic, message.event_id)
        return f"handler error: {type(exc).__name__}"
    return ""


def outbox_deliver_message(*, message_id: int) -> OutboxStatus | None:
    """Deliver one due message if this caller can claim it; safe to call any number of times.

    Returns the message's new status, or None when nothing was done (not found, not
    pending, not yet due, claimed by another worker, or waiting for an earlier message of
    its ordering key).
    """
    follow_up_countdown: float | None = None
    with rls.acting_as(WORKER_PRINCIPAL), transaction.atomic(durable=True):
        now = timezone.now()
        message = (
            OutboxMessage.objects.select_for_update(skip_locked=True, no_key=True)
            .filter(id=message_id, status=OutboxStatus.PENDING, next_attempt_at__lte=now)
            .first()
        )
        if message is None or _has_pending_predecessor(message):
            return None

        error = _run_handler(message)  # holds the row lock; the HTTP timeout bounds it
        now = timezone.now()
        message.attempts += 1
        message.last_attempt_at = now
        if not error:
            message.status = OutboxStatus.DELIVERED
            message.delivered_at = now
            message.last_error = ""
        else:
            message.last_error = error[:LAST_ERROR_MAX_LENGTH]
            deadline = _deadline(message)
            if now >= deadline:
                _dead_letter(message)
            else:
                # the last retry happens at the deadline at the latest
                message.next_attempt_at = min(now + outbox_retry_delay(attempts=message.attempts), deadline)
                follow_up_countdown = max((message.next_attempt_at - now).total_seconds(), 0.0)
        message.save(
            update_fields=["status", "attempts", "last_attempt_at", "last_error", "next_attempt_at", "delivered_at"]
        )
        logger.info(
            "outbox message %s (%s) attempt %s: %s",
            message.event_id,
            message.topic,
            message.attempts,
            "failed: " + message.last_error if error else "delivered",
        )

    if message.status == OutboxStatus.PENDING:
        # Short delays get a delayed nudge; longer ones are left to the relay, which runs
        # every OUTBOX_RELAY_INTERVAL_SECONDS (so at most one interval late), rather than
        # parking hours-long ETA tasks in worker memory.
        if follow_up_countdown is not None and follow_up_countdown < float(settings.OUTBOX_RELAY_INTERVAL_SECONDS):
            outbox_nudge(message.id, countdown=follow_up_countdown)
    else:
        if message.status == OutboxStatus.DEAD:
            _alert_dead(message)  # after the commit: no alert for a rolled-back dead-lettering
        _nudge_next_of_key(topic=message.topic, ordering_key=message.ordering_key, after_id=message.id)
    return OutboxStatus(message.status)


def _alert_dead(message: OutboxMessage) -> None:
    logger.error(
        "ALERT outbox message dead after %s attempts: event %s topic %s key %s created %s: %s",
        message.attempts,
        message.event_id,
        message.topic,
        message.ordering_key,
        message.created_at.isoformat(),
        message.last_error,
        extra={"alert": "outbox_dead", "event_id": str(message.event_id), "topic": message.topic},
    )


def _dead_letter(message: OutboxMessage) -> None:
    """Give up on ``message``: mark it dead and audit it (in the caller's transaction)."""
    message.status = OutboxStatus.DEAD
    audit_record(
        action=AuditAction.CALLBACK_DEAD,
        principal=WORKER_PRINCIPAL,
        object_type="outbox_message",
        object_id=str(message.event_id),
        customer_id=message.customer_id,
        payload={
            "topic": message.topic,
            "ordering_key": message.ordering_key,
            "attempts": message.attempts,
            "last_error": message.last_error,
        },
    )


# --- Relay --------------------------------------------------------------------------------


def outbox_relay_due(*, limit: int = DEFAULT_RELAY_LIMIT) -> list[int]:
    """Nudge due pending messages (oldest first); returns the ids nudged.

    Only the head of each topic's ordering key is nudged (a message waiting for an earlier one
    would be skipped anyway). Rows are read with ``FOR NO KEY UPDATE SKIP LOCKED`` in a
    short transaction, so rows being delivered right now are skipped and concurrent relays
    split the work; the locks are released before the nudges are sent. A worker that
    skipped a row because the relay held it briefly is covered by the relay's own nudge.
    """
    with rls.acting_as(WORKER_PRINCIPAL), transaction.atomic(durable=True):
        earlier_pending = OutboxMessage.objects.filter(
            topic=OuterRef("topic"),
            ordering_key=OuterRef("ordering_key"),
            status=OutboxStatus.PENDING,
            id__lt=OuterRef("id"),
        ).exclude(ordering_key="")
        due_ids = list(
            OutboxMessage.objects.select_for_update(skip_locked=True, no_key=True)
            .filter(status=OutboxStatus.PENDING, next_attempt_at__lte=timezone.now())
            .filter(~Exists(earlier_pending))
            .order_by("id")
            .values_list("id", flat=True)[:limit]
        )
    for message_id in due_ids:
        outbox_nudge(message_id)
    if due_ids:
        logger.info("outbox relay nudged %s due message(s)", len(due_ids))
    return due_ids


# --- Redelivery (admin action) ------------------------------------------------------------

REDELIVERABLE = (OutboxStatus.DEAD, OutboxStatus.DELIVERED)


def outbox_redeliver(*, principal: Principal, message_ids: Iterable[int]) -> list[uuid.UUID]:
    """Put dead or delivered messages back in the queue, due now; returns their event ids.

    Pending messages are left alone. A message past its retry window (``created_at`` +
    ``OUTBOX_MAX_AGE_SECONDS``) gets one more attempt per redelivery: if that fails it is
    dead again (with a new alert), and staff may redeliver it again. Each redelivery is
    audited. A redelivered message keeps its id, so it is not re-ordered behind events
    that were delivered meanwhile: O2S may receive it after later events of its invoice.
    """
    ids = sorted({int(message_id) for message_id in message_ids})
    redelivered: list[OutboxMessage] = []
    with unit_of_work(principal):
        now = timezone.now()
        messages = OutboxMessage.objects.select_for_update(no_key=True).filter(id__in=ids).order_by("id")
        for message in messages:
            if message.status not in REDELIVERABLE:
                continue
            previous = message.status
            message.status = OutboxStatus.PENDING
            message.next_attempt_at = now
            message.delivered_at = None
            message.save(update_fields=["status", "next_attempt_at", "delivered_at"])
            audit_record(
                action=AuditAction.CALLBACK_REDELIVERY_REQUESTED,
                principal=principal,
                object_type="outbox_message",
                object_id=str(message.event_id),
                customer_id=message.customer_id,
                payload={"topic": message.topic, "before": {"status": previous}, "attempts": message.attempts},
            )
            redelivered.append(message)
        for message in redelivered:
            transaction.on_commit(functools.partial(outbox_nudge, message.id))
    return [message.event_id for message in redelivered]
