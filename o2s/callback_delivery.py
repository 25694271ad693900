"""The outbox handler of topic ``o2s.callback``: sign the event body and POST it to O2S.

Subscribed to domain events in ``events/subscriptions.py``. Every failure - no URL configured,
connection refused, timeout, any non-2xx answer - is transient: the outbox retries with
backoff until the message is delivered or dead (docs/outbox.md). Error texts end up in
``OutboxMessage.last_error`` and the admin, so they name the failure, never the URL (it may
carry credentials) nor a secret or signature.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import requests
from django.conf import settings

from o2s.callback_signing import SIGNATURE_HEADER, sign_callback
from paymenter.models import OutboxMessage
from paymenter.outbox import OutboxHandlerError

USER_AGENT = "Paymenter-Callbacks/1"
EVENT_ID_HEADER = "Paymenter-Event-Id"


def callback_secrets() -> list[str]:
    """``O2S_CALLBACK_SECRETS`` as a list; the first one signs."""
    return [secret.strip() for secret in str(settings.O2S_CALLBACK_SECRETS).split(",") if secret.strip()]


def callback_body_bytes(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes sent and signed: compact, key-sorted JSON (ASCII-escaped)."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def deliver_o2s_callback(message: OutboxMessage) -> None:
    url = str(settings.O2S_CALLBACK_URL or "")
    if not url:
        raise OutboxHandlerError("O2S_CALLBACK_URL is not set")
    secrets = callback_secrets()
    if not secrets:
        raise OutboxHandlerError("O2S_CALLBACK_SECRETS is empty")
    body = callback_body_bytes(message.payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_ID_HEADER: str(message.payload.get("id") or f"evt_{message.event_id.hex}"),
        SIGNATURE_HEADER: sign_callback(body, secrets[0], int(time.time())),
    }
    timeout = float(settings.O2S_CALLBACK_TIMEOUT_SECONDS)
    try:
        # stream=True: only the status is needed; the body is never downloaded.
        response = requests.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False, stream=True)
    except requests.Timeout as exc:
        raise OutboxHandlerError(f"timed out after {timeout:g} s") from exc
    except requests.RequestException as exc:
        raise OutboxHandlerError(f"request failed: {type(exc).__name__}") from exc
    status = response.status_code
    reason = str(response.reason or "")[:60]
    response.close()
    if not 200 <= status < 300:
        raise OutboxHandlerError(f"O2S answered HTTP {status} {reason}".strip())
