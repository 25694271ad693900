"""Operational counters: things an operator must be able to alert on without reading logs.

A counter is an integer in Redis (``<CACHE_KEY_PREFIX>:metrics:<name>``), shared by every
web and worker process, exposed in the Prometheus text format at ``/metrics``
(``paymenter.health.metrics``). Redis is also what most of these counters are about being
unavailable, so an increment that cannot reach Redis is kept in the process
(:data:`_local`) and shown by that process's ``/metrics`` too, and the failure is logged:
an increment is never silently lost.

Names end in ``_total`` (Prometheus convention) and are declared in :class:`Metric`, so
the set of counters is one list a reader can find. A counter broken down by labels (the
fraud decisions by stage, by rule) is declared in :class:`LabelledMetric` and kept the same
way, as one Redis hash per counter whose fields are the label sets.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Mapping
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


class LabelledMetric(StrEnum):
    FRAUD_ASSESSMENTS = "fraud_assessments_total"
    """Fraud assessments by ``stage`` (before_start, after_report) and ``decision`` (fraud/engine.py)."""
    FRAUD_RULE_DECISIONS = "fraud_rule_decisions_total"
    """Each rule's answer in each assessment, by ``rule`` and ``decision``."""


_local: Counter[str] = Counter()
_local_labelled: dict[str, Counter[str]] = {metric.value: Counter() for metric in LabelledMetric}
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


def _label_text(labels: Mapping[str, str]) -> str:
    """``a="x",b="y"``: the Prometheus label set, escaped, in the order given."""
    parts = []
    for name, value in labels.items():
        escaped = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        parts.append(f'{name}="{escaped}"')
    return ",".join(parts)


def metric_increment_labelled(metric: LabelledMetric, labels: Mapping[str, str], amount: int = 1) -> None:
    """Add ``amount`` to ``metric`` for the label set ``labels``; never raises."""
    field = _label_text(labels)
    try:
        get_redis_connection("default").hincrby(redis_key(metric.value), field, amount)
    except (RedisError, OSError):
        with _local_lock:
            _local_labelled[metric.value][field] += amount
        logger.error("metric %s kept in this process only: Redis unavailable", metric.value)  # noqa: TRY400


def labelled_metrics_snapshot() -> dict[str, dict[str, int]]:
    """Every labelled counter: label set -> the shared value plus this process's unshared count."""
    values: dict[str, dict[str, int]] = {}
    for metric in LabelledMetric:
        try:
            stored = get_redis_connection("default").hgetall(redis_key(metric.value))
        except (RedisError, OSError):
            logger.error("metrics read without Redis: this process's counts only")  # noqa: TRY400
            stored = {}
        counts = Counter({_text(field): int(value) for field, value in stored.items()})
        with _local_lock:
            counts.update(_local_labelled[metric.value])
        values[metric.value] = dict(sorted(counts.items()))
    return values


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


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
    for name, counts in labelled_metrics_snapshot().items():
        lines.append(f"# TYPE paymenter_{name} counter")
        lines.extend(f"paymenter_{name}{{{labels}}} {value}" for labels, value in counts.items())
    return "\n".join(lines) + "\n"
