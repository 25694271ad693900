"""Per-API-key rate limit: a fixed one-minute window counted in Redis.

Each key may make ``rate_limit_per_minute`` requests per calendar minute (the limit rides
on the :class:`~paymenter.principals.ApiKeyPrincipal`, so no query is needed). The count is
``INCR`` + ``EXPIRE`` in one ``MULTI`` on ``<CACHE_KEY_PREFIX>:throttle:api_key:<id>:<minute>``,
sent together with the refusal gate's voucher for the key (``paymenter.refusals.refusal_vouch``:
the key authenticated, so it passes the gate for a while even from a flooded address): one
Redis round trip per request for both. Over the limit, DRF raises ``Throttled`` and the API
answers 429 ``rate_limited`` with ``Retry-After`` = seconds to the end of the window.

A fixed window lets a client make up to twice its limit across a window boundary; that
is accepted for a limit whose purpose is to stop runaway clients, not to meter.

If Redis is unreachable the throttle **fails open** and logs an ERROR: every request is
still authenticated by key and allowlist, and billing should not stop because a counter
is unavailable. Each request then waits for the Redis socket timeout (2 s, settings).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from django.conf import settings
from django_redis import get_redis_connection
from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from paymenter.principals import ApiKeyPrincipal
from paymenter.refusal_gate import presented_credential
from paymenter.refusals import refusal_vouch

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
_EXPIRY_SLACK_SECONDS = 5  # the counter outlives its window a little; never reused


def window_key(api_key_id: object, window: int) -> str:
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
    return f"{prefix}:throttle:api_key:{api_key_id}:{window}"


class ApiKeyRateThrottle(BaseThrottle):
    timer = staticmethod(time.time)  # seconds since the epoch; tests replace it

    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request: Request, view: APIView) -> bool:
        principal: Any = request.auth
        if not isinstance(principal, ApiKeyPrincipal):
            return True  # not an API key request: IsApiClient has refused it already
        now = self.timer()
        window = int(now // WINDOW_SECONDS)
        key = window_key(principal.api_key_id, window)
        try:
            connection = get_redis_connection("default")
            pipeline = connection.pipeline(transaction=True)
            pipeline.incr(key)
            pipeline.expire(key, WINDOW_SECONDS + _EXPIRY_SLACK_SECONDS)
            refusal_vouch(presented_credential(request.META.get("HTTP_AUTHORIZATION", "")), pipeline=pipeline)
            count, *_ = pipeline.execute()
        except (RedisError, OSError):
            logger.exception("rate limit not enforced for API key %s: Redis unavailable", principal.api_key_id)
            return True
        if int(count) <= principal.rate_limit_per_minute:
            return True
        self._wait = (window + 1) * WINDOW_SECONDS - now
        logger.warning("API key %s over its rate limit (%d/min)", principal.api_key_id, principal.rate_limit_per_minute)
        return False

    def wait(self) -> float | None:
        """Seconds until the current window ends (DRF puts it in ``Retry-After``)."""
        return None if self._wait is None else float(max(1, math.ceil(self._wait)))
