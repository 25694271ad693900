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

import base64
import functools
import json
import logging
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import redis
from celery.signals import after_task_publish, before_task_publish
from celery.utils.nodenames import anon_nodename
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from redis.backoff import NoBackoff
from redis.retry import Retry

from paymenter import rls
from paymenter.celery import app as celery_app
from paymenter.models import OutboxMessage, OutboxStatus
from paymenter.principals import Principal

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


# {insert}: the caller's INSERT; one message when it returned a row (however many), else none
_INSERT_IF_INSERTED = (
    "WITH inserted AS ({insert})\n"
    f"INSERT INTO {OutboxMessage._meta.db_table}\n"
    "    (event_id, topic, ordering_key, customer_id, payload, status, attempts, created_at, next_attempt_at,"
    " last_error)\n"
    "SELECT %s, %s, %s, %s, %s::jsonb, %s, 0, %s, %s, '' FROM (SELECT FROM inserted LIMIT 1) AS won\n"
    "RETURNING id"
)


def outbox_enqueue_if_inserted(
    *,
    principal: Principal,
    insert_sql: str,
    insert_params: Sequence[Any],
    topic: str,
    payload: Mapping[str, Any],
    ordering_key: str = "",
    customer_id: uuid.UUID | None = None,
) -> int | None:
    """Run ``insert_sql`` (an ``INSERT ... ON CONFLICT DO NOTHING RETURNING ...``) as
    ``principal`` and, only if it inserted a row, add an outbox message; commit; nudge.
    Returns the message's id, or ``None`` when nothing was inserted (and nothing written).

    For a hot path that is a single insert-once (the webhook inbox): both inserts are one
    statement (a data-modifying CTE), sent with the RLS scope as **one round trip that is
    its own transaction** - a multi-statement query, which PostgreSQL runs as one implicit
    transaction, so ``set_config(..., true)`` scopes exactly the insert and dies with it -
    instead of BEGIN, ``set_config``, two INSERTs and COMMIT (docs/outbox.md). Like an
    ``atomic(durable=True)`` block it refuses to run inside a caller's transaction (a
    test's excepted, where it runs in a durable block of its own).
    """
    now = timezone.now()
    statement = _INSERT_IF_INSERTED.format(insert=insert_sql)
    params = [*insert_params, uuid.uuid4(), topic, ordering_key, customer_id, json.dumps(dict(payload))]
    params += [OutboxStatus.PENDING.value, now, now]
    row: tuple[Any, ...] | None = None
    if connection.in_atomic_block or not connection.get_autocommit():
        oneshot = False
    else:
        scope_sql, scope_params = rls.scope_statement(principal)
        with connection.cursor() as cursor:
            # a multi-statement query needs client-side binding (Django's default with psycopg 3)
            oneshot = isinstance(cursor.cursor, psycopg.ClientCursor)
            if oneshot:
                cursor.execute(f"{scope_sql};{statement}", [*scope_params, *params])
                cursor.nextset()
                row = cursor.fetchone()
    if not oneshot:
        with rls.acting_as(principal), transaction.atomic(durable=True), connection.cursor() as cursor:
            cursor.execute(statement, params)
            row = cursor.fetchone()
    if row is None:
        return None
    message_id = int(row[0])
    transaction.on_commit(functools.partial(outbox_nudge, message_id))  # committed: at once, unless in a test's
    return message_id


def outbox_nudge(message_id: int, *, countdown: float | None = None) -> None:
    """Best effort: ask a worker to deliver ``message_id`` (after ``countdown`` seconds).

    Published by task name, so the kernel needs no import of the worker. It runs in request
    threads right after a commit: a broker outage must cost a failed connect, not a stalled
    request, so nothing is retried here (one reconnect at most, no back-off); the row stays
    pending and the relay nudges it again. An immediate nudge is one ``LPUSH`` of the
    message ``send_task`` would publish (:class:`TaskPublisher`); a delayed one (a retry's
    countdown, from the worker) goes through ``send_task``.
    """
    try:
        publisher = task_publisher() if countdown is None else None
        time_limits = _declared_time_limits() if publisher is not None else None
        if publisher is not None and time_limits is not None:
            publisher.publish(message_id, time_limits=time_limits)
        else:
            celery_app.send_task(DELIVER_TASK, args=(message_id,), countdown=countdown, retry=False)
    except Exception:  # noqa: BLE001 - any broker failure only delays delivery; the relay covers it
        logger.warning("outbox nudge failed; the relay will deliver message %s", message_id)


# --- The cheap nudge --------------------------------------------------------------------------

# The third element of a protocol-2 body: no callbacks, errbacks, chain or chord.
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
# Broker URLs the publisher can reach with a plain Redis client (kombu's redis+socket is a
# Unix socket path, database 0).
_SCHEMES = {"redis": "redis", "rediss": "rediss", "redis+socket": "unix"}
PUBLISH_TIMEOUT_SECONDS = 1.0


class TaskPublisher:
    """Publishes ``events.tasks.outbox_deliver(message_id)`` as Celery's ``send_task`` does
    (task message protocol 2, JSON, in kombu's Redis envelope: ``docs.celeryq.dev``,
    "Message Protocol"), for a tenth of its CPU: ``send_task`` builds a Redis client, routes
    and ``saferepr``s for every message (~0.6 ms, a sixth of a webhook delivery's Python:
    docs/performance.md); this keeps one connection per process and sends one ``LPUSH``
    (~0.05 ms).

    Used only where the broker is the plain Redis setup it mirrors (:func:`task_publisher`
    checks). ``tests/callbacks/test_nudge.py`` compares its message with ``send_task``'s,
    and a real worker consumes it in ``tests/callbacks/test_celery_worker.py``.
    """

    def __init__(self, *, url: str, queue: str) -> None:
        self.url = url
        self.queue = queue
        scheme, _, rest = url.partition("://")
        self.client = redis.Redis.from_url(
            f"{_SCHEMES[scheme]}://{rest}",
            socket_connect_timeout=PUBLISH_TIMEOUT_SECONDS,
            socket_timeout=PUBLISH_TIMEOUT_SECONDS,
            # one immediate reconnect (a connection the server closed), never a back-off
            retry=Retry(NoBackoff(), 1),
            single_connection_client=True,  # no pool to check out of per command: a third cheaper
        )

    def message(self, message_id: int, *, time_limits: tuple[Any, Any] = (None, None)) -> bytes:
        """The task message for ``message_id``, as kombu's Redis transport stores it;
        ``time_limits``: the task's (hard, soft), when this process has it registered."""
        task_id = str(uuid.uuid4())
        body = json.dumps([[message_id], {}, _EMBED]).encode()
        envelope = {
            "body": base64.b64encode(body).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {
                "lang": "py",
                "task": DELIVER_TASK,
                "id": task_id,
                "shadow": None,
                "eta": None,
                "expires": None,
                "group": None,
                "group_index": None,
                "retries": 0,
                "timelimit": list(time_limits),
                "root_id": task_id,
                "parent_id": None,
                "argsrepr": f"({message_id!r},)",
                "kwargsrepr": "{}",
                "origin": anon_nodename(),
                "ignore_result": None,
                "replaced_task_nesting": 0,
                "stamped_headers": None,
                "stamps": {},
            },
            "properties": {
                "correlation_id": task_id,
                "reply_to": celery_app.thread_oid,
                "delivery_mode": 2,  # persistent
                "delivery_info": {"exchange": "", "routing_key": self.queue},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
        return json.dumps(envelope).encode()

    def publish(self, message_id: int, *, time_limits: tuple[Any, Any] = (None, None)) -> None:
        self.client.lpush(self.queue, self.message(message_id, time_limits=time_limits))


# What a task may declare that send_task would publish it with, other than its time limits
# (celery.app.task.extract_exec_options): any of them set, and nudges take send_task.
_ROUTING_OPTIONS = ("queue", "routing_key", "exchange", "priority", "expires", "delivery_mode", "compression")


def _declared_time_limits() -> tuple[Any, Any] | None:
    """The deliver task's (hard, soft) time limits as ``send_task`` would publish them: the
    task's own where this process has it registered (a worker), else none (the worker applies
    its own anyway). ``None`` when it declares anything else ``send_task`` would apply."""
    # the registry send_task consults (Celery 5.7), read without finalizing the app
    task = celery_app._tasks.get(DELIVER_TASK)  # type: ignore[attr-defined]  # private, not in the stubs
    if task is None:
        return (None, None)
    if any(getattr(task, name, None) is not None for name in _ROUTING_OPTIONS):
        return None
    if getattr(task, "serializer", None) not in {None, "json"}:
        return None
    return (getattr(task, "time_limit", None), getattr(task, "soft_time_limit", None))


# (process, broker settings changed at run time) -> the publisher, or None: send_task
_cached: tuple[tuple[object, ...], TaskPublisher | None] | None = None


def task_publisher() -> TaskPublisher | None:
    """The process's :class:`TaskPublisher` for the current broker, or ``None`` where
    anything ``send_task`` would do differently is configured (another transport or
    serializer, compression, TLS options, a route or priority, sent events, a receiver of
    the publish signals such as a tracer): those nudges keep going through ``send_task``.

    Built once per process (a forked worker builds its own) and again when the broker URL
    is changed at run time (``app.conf["broker_url"] = ...``, as tests do); reading the URL
    through Celery's settings costs more than the rest of a nudge, so it is not re-read."""
    global _cached  # noqa: PLW0603 - one publisher per process and broker URL
    if before_task_publish.receivers or after_task_publish.receivers:
        return None
    conf = celery_app.conf
    changes = conf.changes or {}
    key = (os.getpid(), changes.get("broker_url"), changes.get("broker_write_url"))
    if _cached is not None and _cached[0] == key:
        return _cached[1]
    url = str(conf.broker_write_url or conf.broker_url or "")
    scheme = url.partition("://")[0]
    plain = (
        scheme in _SCHEMES
        and ";" not in url
        and (scheme != "redis+socket" or "?" not in url)
        and conf.task_protocol == 2
        and conf.task_serializer == "json"
        and not conf.task_compression
        and not conf.broker_use_ssl
        and not conf.task_routes
        and not conf.task_queues
        and conf.task_default_priority is None
        and not conf.task_send_sent_event
        and not (conf.broker_transport_options or {}).get("global_keyprefix")
    )
    publisher = TaskPublisher(url=url, queue=str(conf.task_default_queue)) if plain else None
    _cached = (key, publisher)
    return publisher
