"""Refused requests, audited in aggregate: one event per source address and time window.

The refusals are counted in Redis, never in the database, by ``paymenter.refusals``
(and refused at the door past the limit by ``paymenter.refusal_gate``). Here
:func:`refusals_flush` (Celery beat, every ``REFUSAL_WINDOW_SECONDS``) turns every closed
window into one audit event ``requests.refused`` whose payload carries the count, the
first and last time, the count per reason and per detail (e.g. the public lookup id of a
refused API key; never a secret). Every refusal is accounted for: the counts are exact, and
a window stays in Redis until its event has committed. If the database cannot take an
event, the window is kept and retried and ``audit_refusal_events_write_failed_total``
counts the attempt. See docs/audit-chain.md.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from django.db import DatabaseError, transaction
from django_redis import get_redis_connection

from audit.actions import AuditAction
from audit.models import AuditEvent
from audit.services import audit_record
from paymenter import rls
from paymenter.metrics import Metric, metric_increment
from paymenter.principals import SystemPrincipal
from paymenter.refusals import CLOSE_GRACE_SECONDS, WINDOW_INDEX, prefix, window_key, window_seconds

logger = logging.getLogger(__name__)

FLUSH_PRINCIPAL = SystemPrincipal(label="worker:refusals")


OBJECT_TYPE = "request_source"


_FLUSH_LOCK = "refusals:flush-lock"


def _timestamp(value: bytes | None) -> str | None:
    if value is None:
        return None
    return dt.datetime.fromtimestamp(float(value), tz=dt.UTC).isoformat().replace("+00:00", "Z")


def _write_window(
    *, kind: str, start: int, source: str, fields: dict[bytes, bytes], details: dict[bytes, bytes] | None = None
) -> bool:
    """Append the window's event unless it is already on the chain; True when it is there."""
    object_id = f"{kind}:{start}:{source}"

    payload = {
        "kind": kind,
        "source": source,
        "window_start": _timestamp(str(start).encode()),
        "window_seconds": window_seconds(),
        "count": int(fields.get(b"count", b"0")),
        "first_at": _timestamp(fields.get(b"first")),
        "last_at": _timestamp(fields.get(b"last")),
        "reasons": {
            name.decode().removeprefix("reason:"): int(value)
            for name, value in sorted(fields.items())
            if name.startswith(b"reason:")
        },
        "details": {name.decode(): int(value) for name, value in sorted((details or {}).items())},
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
    lock = connection.lock(f"{prefix()}:{_FLUSH_LOCK}", timeout=300)
    if not lock.acquire(blocking=False):
        return 0
    settled = 0
    try:
        index = f"{prefix()}:{WINDOW_INDEX}"
        for raw_member in connection.zrangebyscore(index, "-inf", moment - CLOSE_GRACE_SECONDS):
            kind, start_text, source = raw_member.decode().split("|", 2)
            start = int(start_text)
            key = window_key(kind, start, source)
            fields = connection.hgetall(key)
            details = connection.hgetall(f"{key}:details")
            if fields and not _write_window(kind=kind, start=start, source=source, fields=fields, details=details):
                continue
            connection.delete(key, f"{key}:details")
            connection.zrem(index, raw_member)
            settled += 1
    finally:
        lock.release()
    return settled
