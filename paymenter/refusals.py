"""Refused requests, counted per source address and time window in Redis; and the gate
that answers 429 to an address past its limit before the application does any work.

An attacker must not be able to write audit rows, log lines or database work at the rate
they send requests. So a refusal (a bad API key, an address outside the key's allowlist, a
failed staff login) is only *counted* here, in a hash per ``(kind, source, window)``:

    <prefix>:refusals:<kind>:<window start>:<source>
        count, first, last (unix seconds), reason:<reason> -> count
    <prefix>:refusals:<kind>:<window start>:<source>:details
        <detail> -> count (at most MAX_DETAILS distinct, then "other")

``audit.refusals.refusals_flush`` (Celery beat) turns every closed window into one
aggregated audit event. The same count is the per-source limiter: :func:`refusal_gate`
(called by ``paymenter.refusal_gate.RefusalGate`` in front of Django) refuses an address
past ``REFUSAL_LIMIT_PER_WINDOW`` refusals in the current window, unless the request
presents a credential that authenticated lately (:func:`refusal_vouch`): O2S may share an
address with a flood.

If Redis cannot count a refusal, the request is still refused, the miss is logged at ERROR
and counted in ``audit_refusals_unrecorded_total``; without Redis the gate is open.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.conf import settings
from django_redis import get_redis_connection
from redis.client import Pipeline
from redis.exceptions import RedisError

from paymenter.metrics import Metric, metric_increment
from paymenter.metrics import redis_key as metrics_redis_key

logger = logging.getLogger(__name__)

MAX_DETAILS = 32  # distinct details per window (a flood of random key ids); more count as "other"


WINDOW_INDEX = "refusals:windows"


REASON_RATE_LIMITED = "rate_limited"  # refused at the gate: the address is past its limit


VOUCH_SECONDS = 300  # how long a credential that authenticated passes the gate
CLOSE_GRACE_SECONDS = 2  # processes of one deployment agree on the time to well within this


def clock() -> float:
    """Seconds since the epoch; tests replace it to pin the window."""
    return time.time()


class RefusalKind(StrEnum):
    API = "api"
    """A request to the O2S API refused before it reached a view (401, 403, 429)."""
    STAFF_LOGIN = "staff_login"
    """A failed sign-in: a wrong password or MFA code on the one login page (staff and customers
    alike since docs/portal.md; the name is kept for the audit trail's continuity)."""
    WEBHOOK = "webhook"
    """A gateway webhook delivery refused: bad signature, stale or future time, bad body."""


@dataclass(frozen=True)
class RefusalCount:
    """Where a source stands in the current window after a refusal was counted."""

    count: int
    retry_after: int  # seconds to the end of the window
    recorded: bool = True  # False: the gate let the request through and counted nothing

    @property
    def over_limit(self) -> bool:
        return self.count > int(settings.REFUSAL_LIMIT_PER_WINDOW)


def prefix() -> str:
    return str(settings.CACHES["default"].get("KEY_PREFIX", ""))


def window_seconds() -> int:
    return max(1, int(settings.REFUSAL_WINDOW_SECONDS))


def window_start(now: float) -> int:
    size = window_seconds()
    return int(now // size) * size


# One round trip, atomic. KEYS: the window's hash, its details hash, the window index, a
# metric's counter, the presented credential's voucher key ("" for none). ARGV: moment,
# reason, detail, retention seconds, index member, index score (window end), the details
# cap, "1" to count the metric, the mode, the limit.
# Mode "record" counts the refusal. Mode "gate" counts it (and answers 1) only when the
# window is already past the limit and the credential is not vouched for: a request let through
# answers 0 and writes nothing.
_SCRIPT = """
local count = tonumber(redis.call('HGET', KEYS[1], 'count') or '0')
if ARGV[9] == 'gate' then
  if count <= tonumber(ARGV[10]) then return {0, count} end
  if KEYS[5] ~= '' and redis.call('EXISTS', KEYS[5]) == 1 then return {0, count} end
end
count = redis.call('HINCRBY', KEYS[1], 'count', 1)
redis.call('HSETNX', KEYS[1], 'first', ARGV[1])
redis.call('HSET', KEYS[1], 'last', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'reason:' .. ARGV[2], 1)
redis.call('EXPIRE', KEYS[1], ARGV[4])
if ARGV[3] ~= '' then
  local field = ARGV[3]
  if redis.call('HEXISTS', KEYS[2], field) == 0 and redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[7]) then
    field = 'other'
  end
  redis.call('HINCRBY', KEYS[2], field, 1)
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[5])
if ARGV[8] ~= '' then
  redis.call('INCR', KEYS[4])
end
return {1, count}
"""


def window_key(kind: str, window_start: int, source: str) -> str:
    return f"{prefix()}:refusals:{kind}:{window_start}:{source}"


def window_member(kind: str, window_start: int, source: str) -> str:
    return f"{kind}|{window_start}|{source}"


def refusal_record(
    *,
    kind: RefusalKind,
    source: str,
    reason: str,
    detail: str = "",
    metric: Metric | None = None,
    now: float | None = None,
) -> RefusalCount | None:
    """Count one refusal of ``source`` (a client address; "" when unknown) for ``reason``,
    with an optional public ``detail`` (never a secret: it ends up on the audit trail), and
    counts ``metric`` in the same Redis round trip.

    Never touches the database and never raises: returns ``None`` (after logging at ERROR
    and counting the miss) when Redis cannot be reached.
    """
    return _run(kind=kind, source=source, reason=reason, detail=detail, metric=metric, now=now, gate=False)


def _voucher_key(credential: str) -> str:
    return f"{prefix()}:refusals:vouched:{hashlib.sha256(credential.encode()).hexdigest()}"


def refusal_vouch(credential: str, *, pipeline: Pipeline[Any] | None = None) -> None:
    """Note that ``credential`` (e.g. an API key, as presented) authenticated just now: for
    ``VOUCH_SECONDS`` it passes the gate even from an address past its limit. Stores only a
    hash of it; never raises (without Redis the gate is open anyway).

    With ``pipeline`` the write is only queued there: a caller that talks to Redis for the
    same request anyway (the API key rate limit) sends both in one round trip and handles
    Redis failing."""
    if pipeline is not None:
        pipeline.set(_voucher_key(credential), "1", ex=VOUCH_SECONDS)
        return
    try:
        get_redis_connection("default").set(_voucher_key(credential), "1", ex=VOUCH_SECONDS)
    except (RedisError, OSError):
        logger.warning("could not vouch for a credential: Redis unavailable")


def refusal_gate(
    *,
    kind: RefusalKind,
    source: str,
    credential: str = "",
    detail: str = "",
    metric: Metric | None = None,
    now: float | None = None,
) -> RefusalCount | None:
    """Refuse at the door: when ``source`` is already past the limit in this window and
    ``credential`` is not vouched for, count a ``rate_limited`` refusal and return the standing (the
    caller answers 429); otherwise ``None`` and nothing is written. One Redis round trip;
    without Redis the gate is open (the refusals behind it are still counted or logged)."""
    standing = _run(
        kind=kind,
        source=source,
        reason=REASON_RATE_LIMITED,
        detail=detail,
        metric=metric,
        now=now,
        gate=True,
        credential=credential,
    )
    return standing if standing is not None and standing.recorded else None


def _run(
    *,
    kind: RefusalKind,
    source: str,
    reason: str,
    detail: str,
    metric: Metric | None,
    now: float | None,
    gate: bool,
    credential: str = "",
) -> RefusalCount | None:
    moment = clock() if now is None else now
    start = window_start(moment)
    source = source or "unknown"
    key = window_key(kind, start, source)
    try:
        recorded, count = get_redis_connection("default").eval(
            _SCRIPT,
            5,
            key,
            f"{key}:details",
            f"{prefix()}:{WINDOW_INDEX}",
            metrics_redis_key(metric.value if metric else "unused"),
            _voucher_key(credential) if credential else "",
            f"{moment:.3f}",
            reason,
            detail,
            int(settings.REFUSAL_RETENTION_SECONDS),
            window_member(kind, start, source),
            start + window_seconds(),
            MAX_DETAILS,
            "1" if metric else "",
            "gate" if gate else "record",
            int(settings.REFUSAL_LIMIT_PER_WINDOW),
        )
    except (RedisError, OSError):
        # one line, no traceback: under a flood with Redis down this runs once per request
        if not gate:
            message = "refused request not counted for the audit trail (%s %s from %s): Redis unavailable"
            logger.error(message, kind, reason, source)  # noqa: TRY400
            metric_increment(Metric.AUDIT_REFUSALS_UNRECORDED)
        else:
            logger.error("refusal gate open (%s from %s): Redis unavailable", kind, source)  # noqa: TRY400
        return None
    return RefusalCount(
        count=int(count),
        retry_after=max(1, math.ceil(start + window_seconds() - moment)),
        recorded=bool(recorded),
    )
