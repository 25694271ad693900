"""PayPal's webhook signature, as PayPal makes it: the fake's deliveries and tests' forgeries.

PayPal signs ``transmission_id|transmission_time|webhook_id|crc32(body)`` (the CRC-32 of the
raw body as an unsigned decimal) with SHA256withRSA (PKCS#1 v1.5) and sends it base64-encoded
in ``PAYPAL-TRANSMISSION-SIG``, next to the URL of the certificate that verifies it.
"""

from __future__ import annotations

import base64
import uuid
import zlib
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import load_pem_private_key

ALGORITHM = "SHA256withRSA"


def transmission_time(at: datetime | None = None) -> str:
    """PayPal's format: ``2026-03-01T10:00:00Z``."""
    return (at or datetime.now(tz=UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def signed_headers(
    body: bytes,
    *,
    webhook_id: str,
    private_key_pem: str,
    cert_url: str,
    transmission_id: str | None = None,
    sent_at: str | None = None,
) -> dict[str, str]:
    """The headers of a delivery of ``body`` for the webhook ``webhook_id``, signed with
    ``private_key_pem`` (an RSA key, PEM, unencrypted); ``sent_at`` defaults to now."""
    key = load_pem_private_key(private_key_pem.encode(), password=None)
    if not isinstance(key, RSAPrivateKey):
        raise TypeError("PayPal signs with RSA keys")
    transmission_id = transmission_id or str(uuid.uuid4())
    sent_at = sent_at or transmission_time()
    message = f"{transmission_id}|{sent_at}|{webhook_id}|{zlib.crc32(body)}".encode()
    signature = key.sign(message, PKCS1v15(), SHA256())
    return {
        "Content-Type": "application/json",
        "PAYPAL-TRANSMISSION-ID": transmission_id,
        "PAYPAL-TRANSMISSION-TIME": sent_at,
        "PAYPAL-TRANSMISSION-SIG": base64.b64encode(signature).decode("ascii"),
        "PAYPAL-CERT-URL": cert_url,
        "PAYPAL-AUTH-ALGO": ALGORITHM,
        "PAYPAL-AUTH-VERSION": "v2",
    }
