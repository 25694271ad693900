"""``/webhooks/<gateway>/``: verify, store once, answer 2xx fast (docs/webhooks.md).

Everything a delivery may get wrong is answered 400 with a machine-readable code and
nothing stored: a missing or bad signature, a stale or future timestamp, an oversized or
malformed body (a source outside the optional allowlist gets 403). Each refusal is
counted per source address in Redis and audited once per address and window (the
aggregated refusal trail, ``paymenter/refusals.py``), never one audit row per forgery;
a source past the limit is turned away at the gate in front of Django.

A verified delivery is stored raw in the inbox, once per gateway event id, with an outbox
message for the worker; a duplicate is acknowledged (200) and changes nothing. Events of
types we do not act on are stored and acknowledged too, so Stripe stops retrying them.

A delivery that cannot be verified *yet* - PayPal's signing certificate or verification
endpoint unreachable - is answered 503 with nothing stored or counted: the gateway retries.
"""

from __future__ import annotations

import ipaddress
import logging

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from gateways.base import (
    GatewayCode,
    GatewayEvent,
    GatewayUnavailableError,
    WebhookRejectedError,
    WebhookRejectedReason,
)
from gateways.errors import GatewayDisabledError
from gateways.registry import gateway_for
from gateways.services import webhook_event_store
from paymenter.api_errors import error_body
from paymenter.client_ip import client_ip
from paymenter.metrics import Metric
from paymenter.middleware import machine_endpoint
from paymenter.refusals import RefusalKind, refusal_record

logger = logging.getLogger(__name__)


def _refused(request: HttpRequest, gateway: GatewayCode, error: WebhookRejectedError) -> JsonResponse:
    source = client_ip(request)
    standing = refusal_record(
        kind=RefusalKind.WEBHOOK,
        source=source,
        reason=error.reason.value,
        detail=gateway.value,
        metric=Metric.WEBHOOKS_REFUSED,
    )
    if standing is not None and standing.count == 1:
        # the security log line, once per address and window; the rest is counted and
        # audited in aggregate when the window closes
        logger.warning(
            "%s webhook refused from %s: %s (further refusals from it are counted until the window ends)",
            gateway.value,
            source,
            error.reason.value,
        )
    status = 403 if error.reason is WebhookRejectedReason.SOURCE_NOT_ALLOWED else 400
    response = JsonResponse(error_body(error.reason.value, error.message), status=status)
    # counted above and audited once per address and window: no log line per forgery either
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def _source_allowed(request: HttpRequest, allowed: list[str]) -> bool:
    if not allowed:
        return True
    try:
        address = ipaddress.ip_address(client_ip(request))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network, strict=False) for network in allowed)


def _body(request: HttpRequest) -> bytes:
    """The raw body, refused before it is read when it is larger than the limit."""
    limit = int(settings.WEBHOOK_MAX_BODY_BYTES)
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise WebhookRejectedError(WebhookRejectedReason.BODY_TOO_LARGE, f"The body is larger than {limit} bytes.")
    body = request.read(limit + 1)
    if len(body) > limit:
        raise WebhookRejectedError(WebhookRejectedReason.BODY_TOO_LARGE, f"The body is larger than {limit} bytes.")
    if not body:
        raise WebhookRejectedError(WebhookRejectedReason.BODY_MALFORMED, "The body is empty.")
    return body


def _verified(request: HttpRequest, code: GatewayCode, allowed_ips: list[str]) -> tuple[GatewayEvent, bytes]:
    """The delivery's event and raw body, or :class:`WebhookRejectedError`."""
    try:
        gateway = gateway_for(code)
    except GatewayDisabledError:
        raise WebhookRejectedError(
            WebhookRejectedReason.GATEWAY_DISABLED, "This gateway is not enabled here."
        ) from None
    if not _source_allowed(request, allowed_ips):
        raise WebhookRejectedError(WebhookRejectedReason.SOURCE_NOT_ALLOWED, "This source may not deliver webhooks.")
    body = _body(request)
    return gateway.webhook_verify(body=body, headers=request.headers), body


def _receive(request: HttpRequest, code: GatewayCode, allowed_ips: list[str]) -> JsonResponse:
    try:
        event, body = _verified(request, code, allowed_ips)
    except WebhookRejectedError as error:
        return _refused(request, code, error)
    except GatewayUnavailableError as error:
        # not a refusal: the delivery may be genuine, and the gateway retries a 5xx
        logger.warning("%s webhook not verifiable now: %s", code.value, error)
        response = JsonResponse(
            error_body("gateway_unavailable", "The delivery cannot be verified right now; retry later."), status=503
        )
        response["Retry-After"] = "60"
        return response
    stored_id = webhook_event_store(event=event, body=body, signed_at=event.signed_at)
    return JsonResponse({"received": True, "duplicate": stored_id is None})


@machine_endpoint
@csrf_exempt  # authenticated by the gateway's signature, not a browser session
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    return _receive(request, GatewayCode.STRIPE, settings.STRIPE_WEBHOOK_ALLOWED_IPS)


@machine_endpoint
@csrf_exempt  # authenticated by the gateway's signature, not a browser session
@require_POST
def paypal_webhook(request: HttpRequest) -> JsonResponse:
    # no source allowlist: PayPal publishes no stable delivery addresses; the signature decides
    return _receive(request, GatewayCode.PAYPAL, [])
