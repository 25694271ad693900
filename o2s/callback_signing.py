"""The ``Paymenter-Signature`` scheme of O2S callbacks (docs/callbacks.md).

``Paymenter-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``

The timestamp is signed with the body, so a captured request cannot be replayed outside
the receiver's tolerance window. :func:`verify_callback_signature` is the reference
verifier: O2S may copy it as is (standard library only), and our tests' receiver uses it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence

SIGNATURE_HEADER = "Paymenter-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


def sign_callback(body: bytes, secret: str, timestamp: int) -> str:
    """The header value for ``body`` signed with ``secret`` at ``timestamp`` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},{SCHEME}={digest}"


def verify_callback_signature(
    header: str,
    body: bytes,
    secrets: Sequence[str],
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: int | None = None,
) -> bool:
    """True if ``header`` signs exactly ``body`` (the raw bytes received) with one of
    ``secrets`` and its timestamp is within ``tolerance`` seconds of ``now``.

    Accepts several ``v1=`` entries (any one may match) and ignores unknown schemes, so
    the sender can add signatures later without breaking receivers.
    """
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            return False
        if key == "t":
            if timestamp is not None or not value.isdigit():
                return False
            timestamp = int(value)
        elif key == SCHEME:
            signatures.append(value)
    if timestamp is None or not signatures:
        return False
    current = int(time.time()) if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    signed = f"{timestamp}.".encode() + body
    for secret in secrets:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        if any(hmac.compare_digest(expected, candidate) for candidate in signatures):
            return True
    return False
