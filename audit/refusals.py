"""Refused requests, audited in aggregate: one event per source address and time window.

An attacker must not be able to write audit rows at the rate they send requests, nor make
refusals cost a database connection. So a refusal (a bad API key, an address outside the
key's allowlist, a failed staff login) is only *counted* in Redis, in a hash per
``(kind, source, window)``:

    <prefix>:refusals:<kind>:<window start>:<source>
        count, first, last (unix seconds), reason:<reason> -> count

and :func:`refusals_flush` (Celery beat, every ``REFUSAL_WINDOW_SECONDS``) turns every
closed window into one audit event ``requests.refused`` whose payload carries the count,
the first and last time and the count per reason. Every refusal is accounted for: the
counts are exact, and a window stays in Redis until its event has committed.

The same count is the per-source limiter: a source past ``REFUSAL_LIMIT_PER_WINDOW``
refusals in the current window is answered 429 (``Retry-After`` = the rest of the window)
without any database work, until the window ends.

Failures are never silent: if Redis cannot count a refusal, the request is still refused,
the miss is logged at ERROR and counted in the ``audit_refusals_unrecorded_total`` metric;
if the database cannot take an aggregated event, the window is kept and retried and
``audit_refusal_events_write_failed_total`` counts the attempt. See docs/audit-chain.md.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from dataclasses import dataclass
from enum import StrEnum

from django.conf import settings
from django.db import DatabaseError, transaction
from django_redis import get_redis_connection
from redis.exceptions import RedisError

from audit.actions import AuditAction
from audit.models import AuditEvent
from audit.services import audit_record
from paymenter import rls
from paymenter.metrics import Metric, metric_increment
from paymenter.principals import SystemPrincipal

logger = logging.getLogger(__name__)

FLUSH_PRINCIPAL = SystemPrincipal(label="worker:refusals")
OBJECT_TYPE = "request_source"
MAX_REASONS = 32  # distinct reason fields per window; more are counted as "other"
_INDEX = "refusals:windows"
_FLUSH_LOCK = "refusals:flush-lock"
CLOSE_GRACE_SECONDS = 2  # processes of one deployment agree on the time to well within this


class RefusalKind(StrEnum):
    API = "api"
    """A request to the O2S API refused before it reached a view (401, 403, 429)."""
    STAFF_LOGIN = "staff_login"
    """A failed sign-in to the staff admin."""


@dataclass(frozen=True)
class RefusalCount:
    """Where a source stands in the current window after a refusal was counted."""

    count: int
    retry_after: int  # seconds to the end of the window

    @property
    def over_limit(self) -> bool:
        return self.count > int(settings.REFUSAL_LIMIT_PER_WINDOW)


def _prefix() -> str:
    return str(settings.CACHES["default"].get("KEY_PREFIX", ""))


def _window_seconds() -> int:
    return max(1, int(settings.REFUSAL_WINDOW_SECONDS))


def _window_start(now: float) -> int:
    size = _window_seconds()
    return int(now // size) * size


def _key(kind: str, window_start: int, source: str) -> str:
    return f"{_prefix()}:refusals:{kind}:{window_start}:{source}"


def _member(kind: str, window_start: int, source: str) -> str:
    return f"{kind}|{window_start}|{source}"


def refusal_record(*, kind: RefusalKind, source: str, reason: str, now: float | None = None) -> RefusalCount | None:
    """Count one refusal of ``source`` (a client address; "" when unknown) for ``reason``.

    Never touches the database and never raises: returns ``None`` (after logging at ERROR
    and counting the miss) when Redis cannot be reached.
    """
    moment = time.time() if now is None else now
    start = _window_start(moment)
    source = source or "unknown"
    key = _key(kind, start, source)
    keep = int(settings.REFUSAL_RETENTION_SECONDS)
    try:
        connection = get_redis_connection("default")
        pipeline = connection.pipeline(transaction=True)
        pipeline.hincrby(key, "count", 1)
        pipeline.hsetnx(key, "first", f"{moment:.3f}")
        pipeline.hset(key, "last", f"{moment:.3f}")
        pipeline.hlen(key)
        pipeline.expire(key, keep)
        pipeline.zadd(f"{_prefix()}:{_INDEX}", {_member(kind, start, source): start + _window_seconds()})
        count, _, _, fields, _, _ = pipeline.execute()
        reason_field = f"reason:{reason}" if int(fields) < MAX_REASONS + 3 else "reason:other"
        connection.hincrby(key, reason_field, 1)
    except (RedisError, OSError):
        # one line, no traceback: under a flood with Redis down this runs once per request
        message = "refused request not counted for the audit trail (%s %s from %s): Redis unavailable"
        logger.error(message, kind, reason, source)  # noqa: TRY400
        metric_increment(Metric.AUDIT_REFUSALS_UNRECORDED)
        return None
    return RefusalCount(count=int(count), retry_after=max(1, math.ceil(start + _window_seconds() - moment)))


def refusal_source_over_limit(*, kind: RefusalKind, source: str, now: float | None = None) -> RefusalCount | None:
    """The source's standing when it is already past the limit in this window, else ``None``
    (also when Redis cannot tell: the limiter fails open, the refusal itself still counts)."""
    moment = time.time() if now is None else now
    start = _window_start(moment)
    try:
        raw = get_redis_connection("default").hget(_key(kind, start, source or "unknown"), "count")
    except (RedisError, OSError):
        logger.error("refusal limiter not consulted (%s from %s): Redis unavailable", kind, source)  # noqa: TRY400
        return None
    standing = RefusalCount(count=int(raw or 0), retry_after=max(1, math.ceil(start + _window_seconds() - moment)))
    return standing if standing.over_limit else None


def _timestamp(value: bytes | None) -> str | None:
    if value is None:
        return None
    return dt.datetime.fromtimestamp(float(value), tz=dt.UTC).isoformat().replace("+00:00", "Z")


def _write_window(*, kind: str, start: int, source: str, fields: dict[bytes, bytes]) -> bool:
    """Append the window's event unless it is already on the chain; True when it is there."""
    object_id = f"{kind}:{start}:{source}"
    reasons = {
        name.decode().removeprefix("reason:"): int(value)
        for name, value in sorted(fields.items())
        if name.startswith(b"reason:")
    }
    payload = {
        "kind": kind,
        "source": source,
        "window_start": _timestamp(str(start).encode()),
        "window_seconds": _window_seconds(),
        "count": int(fields.get(b"count", b"0")),
        "first_at": _timestamp(fields.get(b"first")),
        "last_at": _timestamp(fields.get(b"last")),
        "reasons": reasons,
    }
    try:
        with rls.acting_as(FLUSH_PRINCIPAL), transaction.atomic(durable=True):
            # a crash between COMMIT and the Redis DEL must not audit the window twice
            if AuditEvent.objects.filter(object_type=OBJECT_TYPE, object_id=object_id).exists():
                return True
            audit_record(
                action=AuditAction.REQUESTS_REFUSED,
                principal=FLUSH_PRINCIPAL,
                object_type=OBJECT_TYPE,
                object_id=object_id,
                payload=payload,
            )
    except DatabaseError:
        logger.exception("aggregated refusals of %s (%s, window %s) not audited yet; retried", source, kind, start)
        metric_increment(Metric.AUDIT_REFUSAL_EVENTS_WRITE_FAILED)
        return False
    return True


def refusals_flush(*, now: float | None = None) -> int:
    """Write one audit event per closed ``(kind, source, window)``; returns how many windows
    were settled. One flusher at a time (a Redis lock); safe to run any number of times.

    A window is closed ``CLOSE_GRACE_SECONDS`` after its end: no refusal is counted into it
    any more, so reading, auditing and deleting it cannot lose one. A window whose event
    could not be written stays for the next run.
    """
    moment = time.time() if now is None else now
    connection = get_redis_connection("default")
    lock = connection.lock(f"{_prefix()}:{_FLUSH_LOCK}", timeout=300)
    if not lock.acquire(blocking=False):
        return 0
    settled = 0
    try:
        index = f"{_prefix()}:{_INDEX}"
        for raw_member in connection.zrangebyscore(index, "-inf", moment - CLOSE_GRACE_SECONDS):
            kind, start_text, source = raw_member.decode().split("|", 2)
            start = int(start_text)
            key = _key(kind, start, source)
            fields = connection.hgetall(key)
            if fields and not _write_window(kind=kind, start=start, source=source, fields=fields):
                continue
            connection.delete(key)
            connection.zrem(index, raw_member)
            settled += 1
    finally:
        lock.release()
    return settled
