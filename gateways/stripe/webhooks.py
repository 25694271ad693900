"""Stripe webhook deliveries: signature and timestamp verified, then parsed.

The signature is checked by the SDK's ``stripe.WebhookSignature.verify_header`` (the check
``stripe.Webhook.construct_event`` runs first; we skip its second, lenient JSON parse and
the ``StripeObject`` tree it builds, a quarter of the endpoint's CPU: docs/performance.md)
against every secret in ``STRIPE_WEBHOOK_SECRETS`` (several while an endpoint secret
rotates), with ``STRIPE_WEBHOOK_TOLERANCE_SECONDS`` (300) for stale timestamps. The SDK does
not refuse a timestamp in the future: we do, beyond ``WEBHOOK_FUTURE_SKEW_SECONDS``, so a
signature minted ahead of time cannot be kept for later. The body is parsed strictly
(``paymenter.json_parser``: duplicate keys, NaN, lone surrogates refused; it must be an
event object); what is stored is exactly the bytes Stripe signed.

Refund, dispute and early fraud warning events name the PaymentIntent they are about (the
object's ``payment_intent``) as ``transaction_id``: what the ledger fetches back. A refund
event whose object is a refund also names it (``refund_id``); ``charge.refunded`` carries the
charge, so the ledger fetches every refund of the PaymentIntent.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import stripe
from django.conf import settings

from gateways.base import (
    GatewayCode,
    GatewayEvent,
    GatewayEventKind,
    WebhookRejectedError,
    WebhookRejectedReason,
)
from paymenter.json_parser import MalformedJSONError, json_loads_strict

SIGNATURE_HEADER = "Stripe-Signature"

PAYMENT_EVENTS = frozenset(
    {
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
        "checkout.session.expired",
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "payment_intent.processing",
    }
)
# Event type -> (kind, the type its data.object has). Disputes: Stripe sends created, then
# updated as evidence moves, funds_withdrawn/funds_reinstated with the money, closed at the end.
OBJECT_EVENTS: Mapping[str, tuple[GatewayEventKind, str]] = {
    "charge.refunded": (GatewayEventKind.REFUND, "charge"),
    "charge.refund.updated": (GatewayEventKind.REFUND, "refund"),
    "refund.created": (GatewayEventKind.REFUND, "refund"),
    "refund.updated": (GatewayEventKind.REFUND, "refund"),
    "refund.failed": (GatewayEventKind.REFUND, "refund"),
    "charge.dispute.created": (GatewayEventKind.DISPUTE, "dispute"),
    "charge.dispute.updated": (GatewayEventKind.DISPUTE, "dispute"),
    "charge.dispute.closed": (GatewayEventKind.DISPUTE, "dispute"),
    "charge.dispute.funds_withdrawn": (GatewayEventKind.DISPUTE, "dispute"),
    "charge.dispute.funds_reinstated": (GatewayEventKind.DISPUTE, "dispute"),
    "radar.early_fraud_warning.created": (GatewayEventKind.FRAUD_WARNING, "radar.early_fraud_warning"),
    "radar.early_fraud_warning.updated": (GatewayEventKind.FRAUD_WARNING, "radar.early_fraud_warning"),
}


def _signed_timestamp(header: str) -> int:
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            try:
                return int(value)
            except ValueError:
                break
    raise WebhookRejectedError(WebhookRejectedReason.SIGNATURE_INVALID, "The signature header has no valid timestamp.")


def stripe_webhook_verify(*, body: bytes, headers: Mapping[str, str], now: float | None = None) -> GatewayEvent:
    """Verify a delivery from Stripe and parse it, or raise :class:`WebhookRejectedError`."""
    header = headers.get(SIGNATURE_HEADER, "")
    if not header:
        raise WebhookRejectedError(WebhookRejectedReason.SIGNATURE_MISSING, "The Stripe-Signature header is missing.")
    signed_at = _signed_timestamp(header)
    now = time.time() if now is None else now
    tolerance = int(settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS)
    if signed_at > now + int(settings.WEBHOOK_FUTURE_SKEW_SECONDS):
        raise WebhookRejectedError(
            WebhookRejectedReason.TIMESTAMP_FUTURE, "The signature's timestamp is in the future."
        )
    if signed_at < now - tolerance:
        raise WebhookRejectedError(WebhookRejectedReason.TIMESTAMP_STALE, "The signature's timestamp is too old.")
    event = stripe_event_parse(body, signed_at=signed_at)  # a JSON event object, or refused
    for secret in (secret for secret in settings.STRIPE_WEBHOOK_SECRETS if secret):
        try:
            stripe.WebhookSignature.verify_header(body, header, secret, tolerance=tolerance)
        except stripe.SignatureVerificationError:
            continue
        return event
    raise WebhookRejectedError(WebhookRejectedReason.SIGNATURE_INVALID, "The signature does not match.")


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


# Stripe's ids and event types: plain ASCII words (nothing else reaches a column or a log line).
_EVENT_ID = re.compile(r"evt_[A-Za-z0-9_]{1,251}")
_EVENT_TYPE = re.compile(r"[a-z0-9_.]{1,100}")
_OBJECT_ID = re.compile(r"[A-Za-z0-9_]{1,255}")


def _id_of(value: object) -> object:
    """An id field that may come expanded (an object with ``id``) or as the id itself."""
    return value.get("id") if isinstance(value, dict) else value


def _stripe_id(value: object) -> str:
    """An object id as Stripe writes them, or "" for anything else."""
    text = _text(value)
    return text if _OBJECT_ID.fullmatch(text) else ""


def stripe_event_parse(body: bytes, *, signed_at: int | None = None) -> GatewayEvent:
    """Normalize a Stripe event (a verified delivery, or one stored in the inbox)."""
    try:
        document: Any = json_loads_strict(body)
    except MalformedJSONError as exc:
        raise WebhookRejectedError(WebhookRejectedReason.BODY_MALFORMED, f"The body is not JSON: {exc}") from None
    event_id = document.get("id") if isinstance(document, dict) else None
    event_type = document.get("type") if isinstance(document, dict) else None
    data = document.get("data") if isinstance(document, dict) else None
    obj = data.get("object") if isinstance(data, dict) else None
    if (
        not isinstance(event_id, str)
        or not _EVENT_ID.fullmatch(event_id)
        or not isinstance(event_type, str)
        or not _EVENT_TYPE.fullmatch(event_type)
        or not isinstance(obj, dict)
    ):
        raise WebhookRejectedError(
            WebhookRejectedReason.BODY_MALFORMED, "The body is not a Stripe event (id, type, data.object)."
        )
    object_id = _stripe_id(obj.get("id"))
    created = document.get("created")
    created_at = datetime.fromtimestamp(created, tz=UTC) if isinstance(created, int) and created > 0 else None
    session_id = transaction_id = refund_id = dispute_id = ""
    if event_type in PAYMENT_EVENTS:
        kind = GatewayEventKind.PAYMENT
        if event_type.startswith("checkout.session."):
            session_id = object_id
            transaction_id = _stripe_id(_id_of(obj.get("payment_intent")))
        else:
            transaction_id = object_id
    elif event_type in OBJECT_EVENTS:
        kind, object_type = OBJECT_EVENTS[event_type]
        transaction_id = _stripe_id(_id_of(obj.get("payment_intent")))
        if obj.get("object") == object_type == "refund":
            refund_id = object_id
        elif obj.get("object") == object_type == "dispute":
            dispute_id = object_id
    else:
        kind = GatewayEventKind.IGNORED
    return GatewayEvent(
        gateway=GatewayCode.STRIPE,
        event_id=event_id,
        event_type=event_type,
        kind=kind,
        created_at=created_at,
        signed_at=datetime.fromtimestamp(signed_at, tz=UTC) if signed_at is not None else None,
        object_id=object_id,
        session_id=session_id,
        transaction_id=transaction_id,
        refund_id=refund_id,
        dispute_id=dispute_id,
    )
