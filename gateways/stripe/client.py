"""The Stripe API client: base URL, key and timeout from settings, errors classified.

Every call goes through :func:`stripe_call`, which turns the SDK's exceptions into the
gateway interface's two kinds: :class:`~gateways.base.GatewayUnavailableError` (network,
5xx, 429: transient, retry later) and :class:`~gateways.base.GatewayRequestError` (Stripe
refused the request: retrying the same request will not help). Objects come back as plain
dicts (``to_dict()``): SDK objects stop at this module.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import stripe
from django.conf import settings

from gateways.base import GatewayRequestError, GatewayUnavailableError

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4)
def _client(api_key: str, api_base: str, timeout: float) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base},
        http_client=stripe.RequestsClient(timeout=timeout),
        # Our own idempotency keys make retries safe; the SDK retries connection errors twice.
        max_network_retries=2,
    )


def stripe_client() -> stripe.StripeClient:
    """The client for the configured account (``STRIPE_SECRET_KEY``, ``STRIPE_API_BASE``,
    ``STRIPE_TIMEOUT_SECONDS``); tests and staging point ``STRIPE_API_BASE`` at a local peer."""
    return _client(settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE, float(settings.STRIPE_TIMEOUT_SECONDS))


def stripe_call(operation: str, call: Callable[[stripe.StripeClient], Any]) -> dict[str, Any]:
    """Run ``call`` with the client; return the resulting object as a plain dict."""
    try:
        result = call(stripe_client())
    except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
        logger.warning("stripe %s: unreachable or rate limited (%s)", operation, type(exc).__name__)
        raise GatewayUnavailableError(f"stripe {operation}: {type(exc).__name__}") from exc
    except stripe.APIError as exc:
        logger.warning("stripe %s: server error (http %s)", operation, exc.http_status)
        raise GatewayUnavailableError(f"stripe {operation}: http {exc.http_status}") from exc
    except stripe.StripeError as exc:
        code = getattr(exc, "code", None) or type(exc).__name__
        logger.warning("stripe %s refused: %s (http %s)", operation, code, exc.http_status)
        raise GatewayRequestError(f"stripe {operation}: {code}") from exc
    as_dict: dict[str, Any] = result.to_dict()
    return as_dict
