"""Operational counters: things an operator must be able to alert on without reading logs.

A counter is an integer in Redis (``<CACHE_KEY_PREFIX>:metrics:<name>``), shared by every
web and worker process, exposed in the Prometheus text format at ``/metrics``
(``paymenter.health.metrics``). Redis is also what most of these counters are about being
unavailable, so an increment that cannot reach Redis is kept in the process
(:data:`_local`) and shown by that process's ``/metrics`` too, and the failure is logged:
an increment is never silently lost.

Names end in ``_total`` (Prometheus convention) and are declared in :class:`Metric`, so
the set of counters is one list a reader can find.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from enum import StrEnum

from django.conf import settings
from django_redis import get_redis_connection
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


class Metric(StrEnum):
    AUDIT_REFUSALS_UNRECORDED = "audit_refusals_unrecorded_total"
    """Refused requests that could not be counted for the aggregated audit events."""
    AUDIT_REFUSAL_EVENTS_WRITE_FAILED = "audit_refusal_events_write_failed_total"
    """Aggregated refusal windows whose audit event could not be written (retried)."""
    REFUSALS_RATE_LIMITED = "refusals_rate_limited_total"
    """Requests answered 429 by the per-source refusal limiter."""
    INVOICE_CHECKSUM_MISMATCHES = "invoice_checksum_mismatches_total"
    """Invoices first found with a checksum that does not verify (tampering)."""
    ENCRYPTED_VALUES_UNREADABLE = "encrypted_values_unreadable_total"
    """Encrypted values that failed to decrypt (moved between rows, or a lost key)."""
    WEBHOOKS_REFUSED = "webhooks_refused_total"
    """Webhook deliveries refused: signature, timestamp, body or source (webhooks/views.py)."""


_local: Counter[str] = Counter()
_local_lock = threading.Lock()


def redis_key(name: str) -> str:
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
    return f"{prefix}:metrics:{name}"


def metric_increment(metric: Metric, amount: int = 1) -> None:
    """Add ``amount`` to ``metric``; never raises."""
    try:
        get_redis_connection("default").incrby(redis_key(metric.value), amount)
    except (RedisError, OSError):
        with _local_lock:
            _local[metric.value] += amount
        logger.error("metric %s kept in this process only: Redis unavailable", metric.value)  # noqa: TRY400


def metrics_snapshot() -> dict[str, int]:
    """Every declared counter: the shared value plus what this process could not share."""
    values = dict.fromkeys((metric.value for metric in Metric), 0)
    try:
        stored = get_redis_connection("default").mget([redis_key(name) for name in values])
    except (RedisError, OSError):
        logger.error("metrics read without Redis: this process's counts only")  # noqa: TRY400
        stored = [None] * len(values)
    with _local_lock:
        for name, value in zip(list(values), stored, strict=True):
            values[name] = int(value or 0) + _local[name]
    return values


def metrics_text() -> str:
    """The Prometheus text exposition of :func:`metrics_snapshot`."""
    lines: list[str] = []
    for name, value in metrics_snapshot().items():
        lines.append(f"# TYPE paymenter_{name} counter")
        lines.append(f"paymenter_{name} {value}")
    return "\n".join(lines) + "\n"
