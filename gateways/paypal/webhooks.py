"""PayPal webhook deliveries: transmission checked, signature verified, then parsed.

PayPal signs ``transmission_id|transmission_time|webhook_id|crc32(raw body)`` (the CRC as an
unsigned decimal) with SHA256withRSA, and names the certificate whose key checks it in
``PAYPAL-CERT-URL``. We build that string with **our** ``PAYPAL_WEBHOOK_ID``, never one the
delivery could choose, so a delivery meant for another webhook subscription does not verify.

Order of the checks (every refusal is a :class:`~gateways.base.WebhookRejectedError`;
nothing is fetched before the URL rule passed, nothing is stored unless all pass):

1. the body is not larger than ``WEBHOOK_MAX_BODY_BYTES`` (the view refuses earlier, from
   ``Content-Length``);
2. ``PAYPAL_WEBHOOK_ID`` is configured: without it no delivery can be ours
   (``webhook_id_mismatch``);
3. the five ``PAYPAL-*`` headers are there (``webhook_signature_missing``) and well-formed;
   ``PAYPAL-AUTH-ALGO`` is ``SHA256withRSA``;
4. the transmission time is not older than ``PAYPAL_WEBHOOK_TOLERANCE_SECONDS`` nor ahead of
   our clock by more than ``WEBHOOK_FUTURE_SKEW_SECONDS`` (as for Stripe);
5. the certificate URL is https on a paypal.com host (``certificates.certificate_url_check``);
6. the body is a strict JSON PayPal event (ids and type plain ASCII);
7. the signature: offline against the (cached, checked) certificate, or - with
   ``PAYPAL_WEBHOOK_VERIFICATION = "api"`` - by PayPal's ``verify-webhook-signature``.

A wrong webhook id and a tampered body are the same failure to the signature check (the id
is only inside the signed string), so both are ``webhook_signature_invalid``. A certificate
or verification endpoint we cannot reach raises
:class:`~gateways.base.GatewayUnavailableError`: the view answers 503 and PayPal retries.
"""

from __future__ import annotations

import binascii
import logging
import re
import time
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.hashes import SHA256
from django.conf import settings

from gateways.base import (
    GatewayCode,
    GatewayEvent,
    GatewayEventKind,
    GatewayRequestError,
    WebhookRejectedError,
    WebhookRejectedReason,
)
from gateways.paypal.certificates import certificate_url_check, signing_certificate_get
from gateways.paypal.client import paypal_request
from paymenter.json_parser import MalformedJSONError, json_loads_strict

logger = logging.getLogger(__name__)

TRANSMISSION_ID = "PAYPAL-TRANSMISSION-ID"
TRANSMISSION_TIME = "PAYPAL-TRANSMISSION-TIME"
TRANSMISSION_SIG = "PAYPAL-TRANSMISSION-SIG"
CERT_URL = "PAYPAL-CERT-URL"
AUTH_ALGO = "PAYPAL-AUTH-ALGO"
SIGNED_HEADERS = (TRANSMISSION_ID, TRANSMISSION_TIME, TRANSMISSION_SIG, CERT_URL, AUTH_ALGO)
ALGORITHM = "SHA256withRSA"
VERIFICATION_API = "api"

PAYMENT_EVENTS = frozenset(
    {
        "CHECKOUT.ORDER.APPROVED",
        "PAYMENT.CAPTURE.COMPLETED",
        "PAYMENT.CAPTURE.PENDING",
        "PAYMENT.CAPTURE.DENIED",
    }
)
STORED_EVENTS: Mapping[str, GatewayEventKind] = {
    "PAYMENT.CAPTURE.REFUNDED": GatewayEventKind.REFUND,
    "PAYMENT.CAPTURE.REVERSED": GatewayEventKind.DISPUTE,
    "CUSTOMER.DISPUTE.CREATED": GatewayEventKind.DISPUTE,
    "CUSTOMER.DISPUTE.UPDATED": GatewayEventKind.DISPUTE,
    "CUSTOMER.DISPUTE.RESOLVED": GatewayEventKind.DISPUTE,
}

# PayPal's ids and event types: plain ASCII words (nothing else reaches a column or a log line).
_EVENT_ID = re.compile(r"WH-[A-Za-z0-9-]{1,252}")
_EVENT_TYPE = re.compile(r"[A-Z0-9_.-]{1,100}")
_OBJECT_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")
_TRANSMISSION_ID = re.compile(r"[A-Za-z0-9-]{1,128}")
_TRANSMISSION_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})")
_LINKED_ID = re.compile(
    r"/v2/(?P<kind>payments/captures|checkout/orders|payments/refunds)/(?P<id>[A-Za-z0-9_-]{1,255})"
)


def signed_message(*, transmission_id: str, transmission_time: str, webhook_id: str, body: bytes) -> bytes:
    """What PayPal signs for a delivery (the CRC-32 of the raw body as an unsigned decimal)."""
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{zlib.crc32(body)}".encode()


def _transmission_time(value: str) -> datetime:
    if _TRANSMISSION_TIME.fullmatch(value):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise WebhookRejectedError(WebhookRejectedReason.SIGNATURE_INVALID, "The transmission time is not a timestamp.")


def paypal_webhook_verify(*, body: bytes, headers: Mapping[str, str], now: float | None = None) -> GatewayEvent:
    """Verify a delivery from PayPal and parse it, or raise :class:`WebhookRejectedError`."""
    limit = int(settings.WEBHOOK_MAX_BODY_BYTES)
    if len(body) > limit:
        raise WebhookRejectedError(WebhookRejectedReason.BODY_TOO_LARGE, f"The body is larger than {limit} bytes.")
    webhook_id = str(settings.PAYPAL_WEBHOOK_ID)
    if not webhook_id:
        raise WebhookRejectedError(
            WebhookRejectedReason.WEBHOOK_ID_MISMATCH, "No PayPal webhook is configured here (PAYPAL_WEBHOOK_ID)."
        )
    lowered = {name.lower(): value for name, value in headers.items()}
    transmission_id, transmission_time, signature, cert_url, algorithm = (
        lowered.get(name.lower(), "") for name in SIGNED_HEADERS
    )
    if not all((transmission_id, transmission_time, signature, cert_url, algorithm)):
        raise WebhookRejectedError(WebhookRejectedReason.SIGNATURE_MISSING, "A PAYPAL-* signature header is missing.")
    if algorithm != ALGORITHM:
        raise WebhookRejectedError(
            WebhookRejectedReason.SIGNATURE_INVALID, f"Only {ALGORITHM} signatures are accepted."
        )
    if not _TRANSMISSION_ID.fullmatch(transmission_id):
        raise WebhookRejectedError(WebhookRejectedReason.SIGNATURE_INVALID, "The transmission id is malformed.")
    signed_at = _transmission_time(transmission_time)
    now = time.time() if now is None else now
    if signed_at.timestamp() > now + int(settings.WEBHOOK_FUTURE_SKEW_SECONDS):
        raise WebhookRejectedError(WebhookRejectedReason.TIMESTAMP_FUTURE, "The transmission time is in the future.")
    if signed_at.timestamp() < now - int(settings.PAYPAL_WEBHOOK_TOLERANCE_SECONDS):
        raise WebhookRejectedError(WebhookRejectedReason.TIMESTAMP_STALE, "The transmission time is too old.")
    certificate_url_check(cert_url)  # before anything could connect anywhere
    event = paypal_event_parse(body, signed_at=signed_at)
    try:
        raw_signature = binascii.a2b_base64(signature.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        raise WebhookRejectedError(WebhookRejectedReason.SIGNATURE_INVALID, "The signature is not base64.") from None
    message = signed_message(
        transmission_id=transmission_id, transmission_time=transmission_time, webhook_id=webhook_id, body=body
    )
    if settings.PAYPAL_WEBHOOK_VERIFICATION == VERIFICATION_API:
        _verify_by_api(
            body=body,
            fields={
                "auth_algo": algorithm,
                "cert_url": cert_url,
                "transmission_id": transmission_id,
                "transmission_sig": signature,
                "transmission_time": transmission_time,
                "webhook_id": webhook_id,
            },
        )
        return event
    certificate = signing_certificate_get(url=cert_url, now=datetime.fromtimestamp(now, tz=UTC))
    try:
        certificate.public_key.verify(raw_signature, message, PKCS1v15(), SHA256())
    except InvalidSignature:
        raise WebhookRejectedError(
            WebhookRejectedReason.SIGNATURE_INVALID,
            "The signature does not match this delivery and our webhook id.",
        ) from None
    return event


def _verify_by_api(*, body: bytes, fields: Mapping[str, str]) -> None:
    """PayPal's ``verify-webhook-signature``: it re-checks what we would check offline."""
    try:
        answer = paypal_request(
            "notifications.verify-webhook-signature",
            "POST",
            "/v1/notifications/verify-webhook-signature",
            body={**fields, "webhook_event": json_loads_strict(body)},
        )
    except GatewayRequestError as exc:
        raise WebhookRejectedError(
            WebhookRejectedReason.SIGNATURE_INVALID, f"PayPal did not verify the delivery: {exc}"
        ) from None
    if answer.get("verification_status") != "SUCCESS":
        raise WebhookRejectedError(WebhookRejectedReason.SIGNATURE_INVALID, "PayPal says the signature does not match.")


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def paypal_id(value: object) -> str:
    """An object id as PayPal writes them, or "" for anything else."""
    text = _text(value)
    return text if _OBJECT_ID.fullmatch(text) else ""


def linked_id(resource: Mapping[str, Any], *, rel: str, kind: str) -> str:
    """The id in the ``rel`` HATEOAS link of ``resource`` when it points at a ``kind``
    (``payments/captures``, ``checkout/orders``, ``payments/refunds``), else ""."""
    links = resource.get("links")
    for link in links if isinstance(links, list) else []:
        if isinstance(link, dict) and link.get("rel") == rel:
            match = _LINKED_ID.search(_text(link.get("href")))
            if match and match["kind"] == kind:
                return match["id"]
    return ""


def _timestamp(value: object) -> datetime | None:
    text = _text(value)
    try:
        parsed = datetime.fromisoformat(text) if _TRANSMISSION_TIME.fullmatch(text) else None
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed else None


def _order_of_capture(capture: Mapping[str, Any]) -> str:
    supplementary = capture.get("supplementary_data")
    related = supplementary.get("related_ids") if isinstance(supplementary, dict) else None
    order_id = paypal_id(related.get("order_id")) if isinstance(related, dict) else ""
    return order_id or linked_id(capture, rel="up", kind="checkout/orders")


def paypal_event_parse(body: bytes, *, signed_at: datetime | None = None) -> GatewayEvent:
    """Normalize a PayPal event (a verified delivery, or one stored in the inbox)."""
    try:
        document: Any = json_loads_strict(body)
    except MalformedJSONError as exc:
        raise WebhookRejectedError(WebhookRejectedReason.BODY_MALFORMED, f"The body is not JSON: {exc}") from None
    event_id = document.get("id") if isinstance(document, dict) else None
    event_type = document.get("event_type") if isinstance(document, dict) else None
    resource = document.get("resource") if isinstance(document, dict) else None
    if (
        not isinstance(event_id, str)
        or not _EVENT_ID.fullmatch(event_id)
        or not isinstance(event_type, str)
        or not _EVENT_TYPE.fullmatch(event_type)
        or not isinstance(resource, dict)
    ):
        raise WebhookRejectedError(
            WebhookRejectedReason.BODY_MALFORMED, "The body is not a PayPal event (id, event_type, resource)."
        )
    object_id = paypal_id(resource.get("id")) or paypal_id(resource.get("dispute_id"))
    session_id = transaction_id = refund_id = dispute_id = ""
    kind = STORED_EVENTS.get(event_type, GatewayEventKind.IGNORED)
    if event_type == "CHECKOUT.ORDER.APPROVED":
        kind, session_id = GatewayEventKind.PAYMENT, object_id
    elif event_type in PAYMENT_EVENTS:
        kind, transaction_id, session_id = GatewayEventKind.PAYMENT, object_id, _order_of_capture(resource)
    elif event_type == "PAYMENT.CAPTURE.REFUNDED":
        refund_id, transaction_id = object_id, linked_id(resource, rel="up", kind="payments/captures")
    elif event_type == "PAYMENT.CAPTURE.REVERSED":
        # the resource is the reversal (a refund-like object whose "up" is the capture), or
        # the capture itself: either way the capture is what to fetch back
        transaction_id = linked_id(resource, rel="up", kind="payments/captures") or object_id
    elif event_type.startswith("CUSTOMER.DISPUTE.") and kind is GatewayEventKind.DISPUTE:
        dispute_id = paypal_id(resource.get("dispute_id"))
        disputed = resource.get("disputed_transactions")
        first = disputed[0] if isinstance(disputed, list) and disputed else None
        transaction_id = paypal_id(first.get("seller_transaction_id")) if isinstance(first, dict) else ""
    return GatewayEvent(
        gateway=GatewayCode.PAYPAL,
        event_id=event_id,
        event_type=event_type,
        kind=kind,
        created_at=_timestamp(document.get("create_time")),
        signed_at=signed_at.astimezone(UTC) if signed_at else None,
        object_id=object_id,
        session_id=session_id,
        transaction_id=transaction_id,
        refund_id=refund_id,
        dispute_id=dispute_id,
    )
