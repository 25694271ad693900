"""The PayPal API client: base URL, credentials and timeout from settings, errors classified.

Orders v2, captures, refunds and the transaction search go through PayPal's maintained SDK
(``paypal-server-sdk``, module ``paypalserversdk``; :func:`paypal_call`). The endpoints it
does not cover - disputes and ``verify-webhook-signature`` - go through ``requests`` with
the same base URL, token, timeout and classification (:func:`paypal_request`). Both return
the JSON PayPal answered as a plain dict: SDK objects stop at this module and the adapter.

Errors, exactly as for Stripe: network failures, 5xx and 429 are
:class:`~gateways.base.GatewayUnavailableError` (transient: retry later); any other refusal
is a :class:`PaypalRequestError` (a :class:`~gateways.base.GatewayRequestError` carrying
PayPal's issue code, e.g. ``ORDER_ALREADY_CAPTURED``, for the adapter to act on).

The OAuth2 client-credentials token is cached in Redis (Django's cache), shared by every
process, until :data:`TOKEN_REFRESH_MARGIN_SECONDS` before it expires: PayPal rate-limits
token requests, and fetching one per call would double every call. A 401 drops it, and
the call is tried once more with a fresh token (one PayPal revoked early).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
from django.conf import settings
from django.core.cache import cache
from paypalserversdk.configuration import Configuration, Environment, Server
from paypalserversdk.exceptions.api_exception import ApiException
from paypalserversdk.http.auth.o_auth_2 import ClientCredentialsAuthCredentials
from paypalserversdk.models.o_auth_token import OAuthToken
from paypalserversdk.paypal_serversdk_client import PaypalServersdkClient

from gateways.base import GatewayRequestError, GatewayUnavailableError

logger = logging.getLogger(__name__)

TOKEN_REFRESH_MARGIN_SECONDS = 300
"""A cached token is replaced this long before PayPal says it expires (PayPal's live
tokens last about nine hours), so no call starts with a token about to lapse."""
_TOKEN_CACHE_PREFIX = "paypal:oauth-token:"  # noqa: S105 - a cache key prefix, not a secret


class PaypalRequestError(GatewayRequestError):
    """PayPal refused the request (4xx): ``issue`` is its code (``details[0].issue``, else
    the error ``name``, else the OAuth ``error``)."""

    def __init__(self, operation: str, *, status: int, issue: str) -> None:
        super().__init__(f"paypal {operation}: {issue or 'refused'} (http {status})")
        self.status = status
        self.issue = issue


class _Configuration(Configuration):  # type: ignore[misc]  # the SDK is untyped
    """The SDK's configuration aimed at ``PAYPAL_API_BASE``: the SDK itself knows only
    PayPal's live and sandbox hosts (``Environment``), and asks ``get_base_uri`` for every
    request, token requests included."""

    def __init__(self, *, base_url: str, **options: Any) -> None:
        self._paymenter_base_url = base_url
        super().__init__(**options)

    def get_base_uri(self, server: Server = Server.DEFAULT) -> str:
        return self._paymenter_base_url


def _sdk_token(_last: object, _manager: object) -> OAuthToken:
    """The SDK's token provider: asked whenever the client holds no token, or one past its
    expiry, so every process takes the token from Redis rather than fetching its own.

    (The SDK computes "now" from the local clock's wall time read as UTC; on a host whose
    zone is not UTC it asks here more often, or later gets a 401 that renews the token.)
    """
    token, expires_at = paypal_access_token()
    return OAuthToken(
        access_token=token,
        token_type="Bearer",  # noqa: S106 - the token kind, not a secret
        expiry=expires_at - TOKEN_REFRESH_MARGIN_SECONDS,
    )


@functools.lru_cache(maxsize=4)
def _client(client_id: str, client_secret: str, base_url: str, timeout: float) -> Any:
    credentials = ClientCredentialsAuthCredentials(
        o_auth_client_id=client_id,
        o_auth_client_secret=client_secret,
        o_auth_token_provider=_sdk_token,
    )
    config = _Configuration(
        base_url=base_url,
        timeout=timeout,
        # one retry of a connection error or a 5xx on reads; writes carry PayPal-Request-Id
        max_retries=1,
        backoff_factor=0.5,
        environment=Environment.PRODUCTION,
        client_credentials_auth_credentials=credentials,
    )
    return PaypalServersdkClient(config=config)


def paypal_client() -> Any:
    """The SDK client for the configured account (``PAYPAL_CLIENT_ID``/``_SECRET``,
    ``PAYPAL_API_BASE``, ``PAYPAL_TIMEOUT_SECONDS``); tests point the base at a local fake."""
    return _client(
        settings.PAYPAL_CLIENT_ID,
        settings.PAYPAL_CLIENT_SECRET,
        settings.PAYPAL_API_BASE,
        float(settings.PAYPAL_TIMEOUT_SECONDS),
    )


def paypal_clients_forget() -> None:
    """Drop this process's SDK clients and the token they hold (after a 401; tests use it to
    stand for a second process, which has only Redis in common with the first)."""
    _client.cache_clear()


def _token_cache_key() -> str:
    # the account and the API it is for; the secret is hashed in, so a rotated secret
    # never uses a token of the old one (and Redis never sees the secret itself)
    account = f"{settings.PAYPAL_API_BASE}\n{settings.PAYPAL_CLIENT_ID}\n{settings.PAYPAL_CLIENT_SECRET}"
    return _TOKEN_CACHE_PREFIX + hashlib.sha256(account.encode()).hexdigest()[:32]


def paypal_token_forget() -> None:
    """Forget the cached token everywhere (Redis) and here (the SDK client holding it)."""
    cache.delete(_token_cache_key())
    paypal_clients_forget()


def paypal_access_token() -> tuple[str, int]:
    """A bearer token and when it expires (epoch seconds): Redis's while it is fresh, else a
    new one from ``POST /v1/oauth2/token`` (client credentials, through the SDK)."""
    key = _token_cache_key()
    now = int(time.time())
    cached = cache.get(key)
    if (
        isinstance(cached, dict)
        and isinstance(cached.get("access_token"), str)
        and isinstance(cached.get("expires_at"), int)
        and cached["expires_at"] - TOKEN_REFRESH_MARGIN_SECONDS > now
    ):
        return cached["access_token"], cached["expires_at"]
    basic = base64.b64encode(f"{settings.PAYPAL_CLIENT_ID}:{settings.PAYPAL_CLIENT_SECRET}".encode()).decode()
    try:
        response = paypal_client().o_auth_authorization.request_token({"authorization": f"Basic {basic}"})
    except ApiException as exc:
        raise _classified("oauth2.token", exc.response_code, _issue(exc.response.text)) from exc
    except requests.RequestException as exc:
        raise _unreachable("oauth2.token", exc) from exc
    answer = _json("oauth2.token", response.text)
    token, expires_in = answer.get("access_token"), answer.get("expires_in")
    if not isinstance(token, str) or not token or not isinstance(expires_in, int):
        raise GatewayUnavailableError("paypal oauth2.token: no token in the answer")
    expires_at = now + expires_in
    lifetime = expires_in - TOKEN_REFRESH_MARGIN_SECONDS
    if lifetime > 0:
        cache.set(key, {"access_token": token, "expires_at": expires_at}, timeout=lifetime)
    return token, expires_at


def _issue(text: str | None) -> str:
    """PayPal's reason for a refusal: ``details[0].issue``, else ``name``, else OAuth's ``error``."""
    try:
        document = json.loads(text or "")
    except ValueError:
        return ""
    if not isinstance(document, dict):
        return ""
    details = document.get("details")
    if isinstance(details, list) and details and isinstance(details[0], dict):
        issue = details[0].get("issue")
        if isinstance(issue, str) and issue:
            return issue[:100]
    for field in ("name", "error"):
        value = document.get(field)
        if isinstance(value, str) and value:
            return value[:100]
    return ""


def _classified(operation: str, status: int, issue: str) -> Exception:
    if status == 429 or status >= 500:
        logger.warning("paypal %s: unavailable (http %s)", operation, status)
        return GatewayUnavailableError(f"paypal {operation}: http {status}")
    logger.warning("paypal %s refused: %s (http %s)", operation, issue or "-", status)
    return PaypalRequestError(operation, status=status, issue=issue)


def _unreachable(operation: str, exc: Exception) -> GatewayUnavailableError:
    logger.warning("paypal %s: unreachable (%s)", operation, type(exc).__name__)
    return GatewayUnavailableError(f"paypal {operation}: {type(exc).__name__}")


def _json(operation: str, text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        document = json.loads(text)
    except ValueError:
        raise GatewayUnavailableError(f"paypal {operation}: the answer is not JSON") from None
    if not isinstance(document, dict):
        raise GatewayUnavailableError(f"paypal {operation}: the answer is not a JSON object")
    return document


def paypal_call(operation: str, call: Callable[[Any], Any]) -> dict[str, Any]:
    """Run ``call`` with the SDK client; return PayPal's JSON answer as a plain dict."""
    for attempt in (1, 2):
        try:
            response = call(paypal_client())
        except ApiException as exc:
            if exc.response_code == 401 and attempt == 1:
                paypal_token_forget()  # revoked or expired early: once more with a new token
                continue
            raise _classified(operation, exc.response_code, _issue(exc.response.text)) from exc
        except requests.RequestException as exc:
            raise _unreachable(operation, exc) from exc
        return _json(operation, response.text)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def paypal_request(
    operation: str,
    method: str,
    path: str,
    *,
    params: Mapping[str, str] | None = None,
    body: Mapping[str, Any] | None = None,
    request_id: str = "",
) -> dict[str, Any]:
    """An endpoint the SDK does not cover, with the same base URL, token, timeout and error
    classification as :func:`paypal_call`; ``request_id`` is sent as ``PayPal-Request-Id``."""
    for attempt in (1, 2):
        token, _ = paypal_access_token()
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if request_id:
            headers["PayPal-Request-Id"] = request_id
        try:
            response = requests.request(
                method,
                f"{settings.PAYPAL_API_BASE}{path}",
                params=dict(params or {}),
                json=dict(body) if body is not None else None,
                headers=headers,
                timeout=float(settings.PAYPAL_TIMEOUT_SECONDS),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise _unreachable(operation, exc) from exc
        if response.status_code == 401 and attempt == 1:
            paypal_token_forget()
            continue
        if response.status_code >= 300:
            raise _classified(operation, response.status_code, _issue(response.text))
        return _json(operation, response.text)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
