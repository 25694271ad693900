"""The fake's HTTP server and state: what PayPal's REST API does for one merchant, in memory.

Served at one base URL (the app's ``PAYPAL_API_BASE``):

* ``POST /v1/oauth2/token``: client credentials (HTTP Basic) -> a bearer token; counted;
* ``/v2/checkout/orders`` (create, get, capture), ``/v2/payments/captures/<id>`` (get,
  refund - never more than remains), ``/v2/payments/refunds/<id>``;
* ``/v1/customer/disputes`` (list by ``disputed_transaction_id``, get);
* ``/v1/reporting/transactions`` (successful captures and refunds in a window of 31 days at most);
* ``POST /v1/notifications/verify-webhook-signature`` (checks against what was sent);
* ``/checkoutnow?token=<order>``: the buyer's approval page (Approve / Cancel);
* ``/_peer/...``: the control API for tests (loopback clients only).

Every write honours ``PayPal-Request-Id``: the same id on the same path answers the first
reply again. Webhooks are signed like PayPal's (:mod:`devtools.paypal_peer.signing`) with
the key and certificate URL from ``/_peer/config``, and delivered on one background thread
in order (``deliver``), kept for ``/_peer/release`` (``hold``) or only logged (``drop``).
Resources carry the fake's clock (``/_peer/config {"clock": ...}``, for fixed times in
tests); transmissions are always signed at the real time, as a receiver checks them.

The HTTP plumbing (threading server, request, reply) is :mod:`devtools.peer_http`, shared with
the Stripe peer; :class:`Peer` is what it serves.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import logging
import re
import secrets
import string
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from devtools.localstripe_launcher import is_loopback
from devtools.paypal_peer import pages
from devtools.paypal_peer.signing import ALGORITHM, signed_headers, transmission_time
from devtools.peer_http import PeerServer, Reply, Request, WebhookQueue, html_reply, json_reply, see_other

log = logging.getLogger("paypal_peer")

DEFAULT_CLIENT_ID = "paypal-peer-client"
DEFAULT_CLIENT_SECRET = "paypal-peer-secret"  # noqa: S105 - the fake's own test credential
DELIVERY_MODES = ("deliver", "hold", "drop")
TOKEN_LIFETIME_SECONDS = 32_400
WEBHOOK_TIMEOUT = 10
ZERO_DECIMAL = frozenset({"HUF", "JPY", "TWD"})  # PayPal refuses decimals for these
REPORT_MAX_DAYS = 31
CAPTURE_EVENTS = {
    "COMPLETED": "PAYMENT.CAPTURE.COMPLETED",
    "PENDING": "PAYMENT.CAPTURE.PENDING",
    "DECLINED": "PAYMENT.CAPTURE.DENIED",
    "REVERSED": "PAYMENT.CAPTURE.REVERSED",
}
DISPUTE_OUTCOMES = (
    "RESOLVED_BUYER_FAVOUR",
    "RESOLVED_SELLER_FAVOUR",
    "RESOLVED_WITH_PAYOUT",
    "CANCELED_BY_BUYER",
    "ACCEPTED",
    "DENIED",
    "NONE",
)
ORDER_PATH = re.compile(r"/v2/checkout/orders/(?P<id>[A-Z0-9]+)(?P<capture>/capture)?")
CAPTURE_PATH = re.compile(r"/v2/payments/captures/(?P<id>[A-Z0-9]+)(?P<refund>/refund)?")
REFUND_PATH = re.compile(r"/v2/payments/refunds/(?P<id>[A-Z0-9]+)")
DISPUTE_PATH = re.compile(r"/v1/customer/disputes/(?P<id>PP-D-[0-9]+)")
CONTROL_PATH = re.compile(r"/_peer/(?P<kind>orders|captures|disputes|events)/(?P<id>[A-Za-z0-9-]+)/(?P<verb>\w+)")


class PaypalError(Exception):
    """An API refusal in PayPal's error format (``name``, ``message``, ``details[].issue``)."""

    def __init__(self, status: int, name: str, issue: str = "", message: str = "") -> None:
        super().__init__(message or issue or name)
        self.status = status
        self.body: dict[str, Any] = {
            "name": name,
            "message": message or name.replace("_", " ").capitalize(),
            "debug_id": _random(13, string.hexdigits.lower()),
        }
        if issue:
            self.body["details"] = [{"issue": issue, "description": message or issue}]


def _random(length: int, alphabet: str = string.ascii_uppercase + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PaypalError(400, "INVALID_REQUEST", "INVALID_PARAMETER_SYNTAX", f"not a date-time: {value!r}") from None
    if parsed.tzinfo is None:
        raise PaypalError(400, "INVALID_REQUEST", "INVALID_PARAMETER_SYNTAX", "a date-time needs its offset")
    return parsed


def _amount(currency: str, value: str) -> Decimal:
    """A checked amount: the currency's decimals exactly as PayPal allows them."""
    decimals = 0 if currency in ZERO_DECIMAL else 2
    pattern = r"\d{1,10}" if decimals == 0 else r"\d{1,10}(?:\.\d{1,2})?"
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise PaypalError(422, "UNPROCESSABLE_ENTITY", "CURRENCY_NOT_SUPPORTED", f"currency {currency!r}")
    if not re.fullmatch(pattern, value):
        raise PaypalError(422, "UNPROCESSABLE_ENTITY", "DECIMAL_PRECISION", f"{value!r} for {currency}")
    try:
        return Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
        raise PaypalError(422, "UNPROCESSABLE_ENTITY", "DECIMAL_PRECISION", value) from None


def _money(currency: str, value: Decimal) -> dict[str, str]:
    text = f"{value:.0f}" if currency in ZERO_DECIMAL else f"{value:.2f}"
    return {"currency_code": currency, "value": text}


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _json_object(request: Request) -> dict[str, Any]:
    """The request's JSON object body; none (or ``null``) is ``{}``, as PayPal takes it."""
    if not request.body.strip() or request.body.strip() == b"null":
        return {}
    try:
        data = json.loads(request.body)
    except ValueError:
        raise PaypalError(400, "INVALID_REQUEST", "MALFORMED_REQUEST_JSON") from None
    if not isinstance(data, dict):
        raise PaypalError(400, "INVALID_REQUEST", "MALFORMED_REQUEST_JSON")
    return data


@dataclasses.dataclass
class Config:
    webhook_url: str | None = None
    webhook_id: str = "WEBHOOK-PEER"
    signing_key_pem: str | None = None
    cert_url: str | None = None
    delivery: str = "deliver"
    capture_status: str = "COMPLETED"
    clock: str | None = None  # resources' time (ISO 8601); None: the real time


@dataclasses.dataclass
class Order:
    obj: dict[str, Any]
    return_url: str
    cancel_url: str


class Peer:
    """All of the fake's state, under one lock."""

    def __init__(self, *, base_url: str, client_id: str, client_secret: str, config: Config | None = None) -> None:
        self.base_url = base_url
        self.client_id = client_id
        self.client_secret = client_secret
        self._initial_config = config or Config()  # what /_peer/reset returns to
        self._lock = threading.RLock()
        self._delivery_lock = threading.Lock()
        self._clear()
        self._deliveries = WebhookQueue(self.deliver, thread_name="paypal-peer-webhooks")

    def _clear(self) -> None:
        self.config = dataclasses.replace(self._initial_config)
        self._tokens: set[str] = set()
        self._token_requests = 0
        self._orders: dict[str, Order] = {}
        self._captures: dict[str, dict[str, Any]] = {}
        self._refunds: dict[str, dict[str, Any]] = {}
        self._disputes: dict[str, dict[str, Any]] = {}
        self._replays: dict[tuple[str, str], Reply] = {}
        self._events: list[dict[str, Any]] = []
        self._held: list[dict[str, Any]] = []
        self._transmissions: dict[str, dict[str, str]] = {}  # transmission id -> what was signed and sent
        self._dispute_counter = 0

    def now(self) -> datetime:
        return _parse_time(self.config.clock) if self.config.clock else datetime.now(tz=UTC)

    def _link(self, path: str, rel: str, method: str = "GET") -> dict[str, str]:
        return {"href": f"{self.base_url}{path}", "rel": rel, "method": method}

    # -- entry point ---------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        """The answer to one HTTP request (:mod:`devtools.peer_http` serves it). Every API answer
        carries a fresh ``Paypal-Debug-Id``, as PayPal's do, a replayed one too."""
        reply = self._answer(request)
        if request.path.startswith(("/v1/", "/v2/")):
            debug_id = _random(13, string.hexdigits.lower())
            return dataclasses.replace(reply, headers={"Paypal-Debug-Id": debug_id, **reply.headers})
        return reply

    def _answer(self, request: Request) -> Reply:
        try:
            if request.path.startswith("/_peer/") and not is_loopback(request.client):
                return json_reply(403, {"error": "the control API answers loopback clients only"})
            delivered = self._deliver_now(request)
            if delivered is not None:
                return delivered
            with self._lock:
                if request.path.startswith("/_peer/"):
                    return self._control(request)
                if request.path.startswith("/checkoutnow"):
                    return self._page(request)
                if request.path == "/v1/oauth2/token":
                    return self._token(request)
                if request.path.startswith(("/v1/", "/v2/")):
                    return self._api(request)
                return json_reply(404, {"name": "NOT_FOUND"})
        except PaypalError as e:
            return json_reply(e.status, e.body)
        except Exception as e:  # a bug in the double must reach the caller as an HTTP 500, not a reset
            log.exception("paypal peer failed on %s %s", request.method, request.path)
            return json_reply(500, {"name": "INTERNAL_SERVER_ERROR", "message": f"paypal peer bug: {e!r}"})

    # -- OAuth ----------------------------------------------------------------------------------

    def _token(self, request: Request) -> Reply:
        self._token_requests += 1
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("Authorization", "") != f"Basic {expected}":
            return json_reply(401, {"error": "invalid_client", "error_description": "Client Authentication failed"})
        if dict(request.form()).get("grant_type") != "client_credentials":
            return json_reply(400, {"error": "unsupported_grant_type", "error_description": "grant_type"})
        token = "A21AA" + _random(40, string.ascii_letters + string.digits)
        self._tokens.add(token)
        return json_reply(
            200,
            {
                "scope": "https://uri.paypal.com/services/payments/payment",
                "access_token": token,
                "token_type": "Bearer",
                "app_id": "APP-PEER",
                "expires_in": TOKEN_LIFETIME_SECONDS,
                "nonce": _random(20),
            },
        )

    # -- the REST API ---------------------------------------------------------------------------

    def _api(self, request: Request) -> Reply:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or token not in self._tokens:
            raise PaypalError(401, "AUTHENTICATION_FAILURE", message="Authentication failed: invalid or missing token")
        request_id = request.headers.get("PayPal-Request-Id", "")
        if request.method == "POST" and request_id:
            seen = self._replays.get((request_id, request.path))
            if seen is not None:
                return seen
        reply = self._route(request)
        if request.method == "POST" and request_id and reply.status < 300:
            self._replays[(request_id, request.path)] = reply
        return reply

    def _route(self, request: Request) -> Reply:
        method, path = request.method, request.path
        if (method, path) == ("POST", "/v2/checkout/orders"):
            return json_reply(201, self._order_create(_json_object(request)))
        if (method, path) == ("GET", "/v1/customer/disputes"):
            return json_reply(200, self._disputes_list(dict(request.params())))
        if (method, path) == ("GET", "/v1/reporting/transactions"):
            return json_reply(200, self._report(dict(request.params())))
        if (method, path) == ("POST", "/v1/notifications/verify-webhook-signature"):
            return json_reply(200, {"verification_status": self._verify(_json_object(request))})
        if match := ORDER_PATH.fullmatch(path):
            order = self._order(match["id"])
            if method == "GET" and not match["capture"]:
                return json_reply(200, order.obj)
            if method == "POST" and match["capture"]:
                return json_reply(201, self._order_capture(order))
        if (match := CAPTURE_PATH.fullmatch(path)) and match["id"] in self._captures:
            capture = self._captures[match["id"]]
            if method == "GET" and not match["refund"]:
                return json_reply(200, capture)
            if method == "POST" and match["refund"]:
                return json_reply(201, self._refund(capture, _json_object(request)))
        if (match := REFUND_PATH.fullmatch(path)) and match["id"] in self._refunds and method == "GET":
            return json_reply(200, self._public(self._refunds[match["id"]]))
        if (match := DISPUTE_PATH.fullmatch(path)) and match["id"] in self._disputes and method == "GET":
            return json_reply(200, self._disputes[match["id"]])
        raise PaypalError(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", f"{method} {path}: no such resource")

    def _order(self, order_id: str) -> Order:
        order = self._orders.get(order_id)
        if order is None:
            raise PaypalError(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", f"no order {order_id}")
        return order

    def _order_create(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("intent") != "CAPTURE":
            raise PaypalError(422, "UNPROCESSABLE_ENTITY", "INTENT_NOT_SUPPORTED", "the fake knows intent CAPTURE only")
        units = body.get("purchase_units")
        if not isinstance(units, list) or len(units) != 1 or not isinstance(units[0], dict):
            raise PaypalError(400, "INVALID_REQUEST", "MISSING_REQUIRED_PARAMETER", "one purchase unit")
        unit = units[0]
        amount: dict[str, Any] = unit["amount"] if isinstance(unit.get("amount"), dict) else {}
        currency, value = str(amount.get("currency_code", "")), str(amount.get("value", ""))
        _amount(currency, value)
        wallet = (body.get("payment_source") or {}).get("paypal") or {}
        context = wallet.get("experience_context") or body.get("application_context") or {}
        if not context.get("return_url") or not context.get("cancel_url"):
            raise PaypalError(400, "INVALID_REQUEST", "MISSING_REQUIRED_PARAMETER", "return_url and cancel_url")
        order_id, now = _random(17), _iso(self.now())
        obj: dict[str, Any] = {
            "id": order_id,
            "intent": "CAPTURE",
            "status": "PAYER_ACTION_REQUIRED" if wallet else "CREATED",
            "payment_source": {"paypal": {}},
            "purchase_units": [
                {
                    "reference_id": unit.get("reference_id", "default"),
                    "custom_id": unit.get("custom_id", ""),
                    "description": unit.get("description", ""),
                    "amount": {"currency_code": currency, "value": value},
                    "payee": {"merchant_id": "PEERMERCHANT01", "email_address": "merchant@peer.invalid"},
                }
            ],
            "create_time": now,
            "update_time": now,
            "links": [
                self._link(f"/v2/checkout/orders/{order_id}", "self"),
                self._link(f"/checkoutnow?token={order_id}", "payer-action" if wallet else "approve"),
            ],
        }
        self._orders[order_id] = Order(obj, str(context["return_url"]), str(context["cancel_url"]))
        return obj

    def order_approve(self, order: Order) -> None:
        obj = order.obj
        if obj["status"] == "APPROVED":
            return
        if obj["status"] not in ("CREATED", "PAYER_ACTION_REQUIRED"):
            raise PaypalError(422, "UNPROCESSABLE_ENTITY", "ORDER_NOT_APPROVABLE", f"order is {obj['status']}")
        obj.update(
            status="APPROVED",
            update_time=_iso(self.now()),
            payer={"name": {"given_name": "Test", "surname": "Buyer"}, "payer_id": "PEERPAYER0001"},
            links=[
                self._link(f"/v2/checkout/orders/{obj['id']}", "self"),
                self._link(f"/v2/checkout/orders/{obj['id']}", "update", "PATCH"),
                self._link(f"/v2/checkout/orders/{obj['id']}/capture", "capture", "POST"),
            ],
        )
        self._emit("CHECKOUT.ORDER.APPROVED", "checkout-order", obj, "An order has been approved by buyer")

    def _order_capture(self, order: Order) -> dict[str, Any]:
        obj = order.obj
        if obj["status"] == "COMPLETED":
            raise PaypalError(422, "UNPROCESSABLE_ENTITY", "ORDER_ALREADY_CAPTURED", "the order is captured already")
        if obj["status"] != "APPROVED":
            raise PaypalError(422, "UNPROCESSABLE_ENTITY", "ORDER_NOT_APPROVED", "the payer has not approved it")
        unit, now = obj["purchase_units"][0], _iso(self.now())
        capture_id = _random(17)
        capture: dict[str, Any] = {
            "id": capture_id,
            "status": self.config.capture_status,
            "amount": dict(unit["amount"]),
            "final_capture": True,
            "seller_protection": {"status": "ELIGIBLE", "dispute_categories": ["ITEM_NOT_RECEIVED"]},
            "custom_id": unit["custom_id"],
            "supplementary_data": {"related_ids": {"order_id": obj["id"]}},
            "create_time": now,
            "update_time": now,
            "links": [
                self._link(f"/v2/payments/captures/{capture_id}", "self"),
                self._link(f"/v2/payments/captures/{capture_id}/refund", "refund", "POST"),
                self._link(f"/v2/checkout/orders/{obj['id']}", "up"),
            ],
        }
        if capture["status"] == "PENDING":
            capture["status_details"] = {"reason": "PENDING_REVIEW"}
        self._captures[capture_id] = capture
        unit["payments"] = {"captures": [capture]}  # the same dict: later changes show in the order
        obj.update(status="COMPLETED", update_time=now)
        obj["links"] = [self._link(f"/v2/checkout/orders/{obj['id']}", "self")]
        self.capture_event(capture)
        return obj

    def capture_event(self, capture: dict[str, Any]) -> None:
        event_type = CAPTURE_EVENTS.get(capture["status"])
        if event_type and event_type != "PAYMENT.CAPTURE.REVERSED":
            summary = f"Payment {capture['status'].lower()} for {capture['amount']['value']}"
            self._emit(event_type, "capture", capture, summary)

    def _remaining(self, capture: dict[str, Any]) -> Decimal:
        currency = capture["amount"]["currency_code"]
        refunded = sum(
            (
                _amount(currency, refund["amount"]["value"])
                for refund in self._refunds.values()
                if refund["_capture"] == capture["id"] and refund["status"] in ("COMPLETED", "PENDING")
            ),
            Decimal(0),
        )
        return Decimal(capture["amount"]["value"]) - refunded

    def _refund(self, capture: dict[str, Any], body: dict[str, Any], *, note: str = "") -> dict[str, Any]:
        if capture["status"] not in ("COMPLETED", "PARTIALLY_REFUNDED"):
            issue = "CAPTURE_FULLY_REFUNDED" if capture["status"] == "REFUNDED" else "REFUND_NOT_ALLOWED"
            raise PaypalError(422, "UNPROCESSABLE_ENTITY", issue, f"the capture is {capture['status']}")
        currency, remaining = capture["amount"]["currency_code"], self._remaining(capture)
        amount = body.get("amount") if isinstance(body.get("amount"), dict) else None
        if amount is None:
            value = remaining
        else:
            if amount.get("currency_code") != currency:
                raise PaypalError(422, "UNPROCESSABLE_ENTITY", "REFUND_CURRENCY_MISMATCH", "not the capture's currency")
            value = _amount(currency, str(amount.get("value", "")))
        if value <= 0 or value > remaining:
            raise PaypalError(422, "UNPROCESSABLE_ENTITY", "REFUND_AMOUNT_EXCEEDED", f"{remaining} remains")
        custom_id = body["custom_id"] if isinstance(body.get("custom_id"), str) else None
        refund = self._refund_object(capture, _money(currency, value), custom_id=custom_id, note=note)
        self._refunds[refund["id"]] = refund
        refund["_capture"] = capture["id"]
        status = "REFUNDED" if self._remaining(capture) == 0 else "PARTIALLY_REFUNDED"
        capture.update(status=status, update_time=refund["create_time"])
        public = self._public(refund)
        self._emit("PAYMENT.CAPTURE.REFUNDED", "refund", public, f"A {value} {currency} capture payment was refunded")
        return public

    def _refund_object(
        self, capture: dict[str, Any], amount: dict[str, str], *, custom_id: str | None = None, note: str = ""
    ) -> dict[str, Any]:
        """A new refund of ``capture`` as PayPal shows it, its "up" link the capture."""
        refund_id, now = _random(17), _iso(self.now())
        refund: dict[str, Any] = {
            "id": refund_id,
            "amount": amount,
            "status": "COMPLETED",
            "create_time": now,
            "update_time": now,
            "links": [
                self._link(f"/v2/payments/refunds/{refund_id}", "self"),
                self._link(f"/v2/payments/captures/{capture['id']}", "up"),
            ],
        }
        if custom_id is not None:
            refund["custom_id"] = custom_id
        if note:
            refund["note_to_payer"] = note
        return refund

    @staticmethod
    def _public(obj: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in obj.items() if not key.startswith("_")}

    def _disputes_list(self, params: dict[str, str]) -> dict[str, Any]:
        wanted = params.get("disputed_transaction_id")
        items = [
            {key: d[key] for key in ("dispute_id", "create_time", "update_time", "reason", "status", "dispute_amount")}
            for d in self._disputes.values()
            if wanted is None or d["disputed_transactions"][0]["seller_transaction_id"] == wanted
        ]
        return {"items": items, "links": []}

    def _report(self, params: dict[str, str]) -> dict[str, Any]:
        if "start_date" not in params or "end_date" not in params:
            raise PaypalError(400, "INVALID_REQUEST", "MISSING_REQUIRED_PARAMETER", "start_date and end_date")
        start, end = _parse_time(params["start_date"]), _parse_time(params["end_date"])
        if end < start or end - start > timedelta(days=REPORT_MAX_DAYS):
            raise PaypalError(400, "INVALID_REQUEST", "INVALID_PARAMETER_VALUE", "the range exceeds 31 days")
        rows = [
            self._row(capture["id"], "T0006", capture["amount"], capture["create_time"], capture)
            for capture in self._captures.values()
            if capture["status"] in ("COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED", "REVERSED")
        ]
        for refund in self._refunds.values():
            negative = dict(refund["amount"], value=f"-{refund['amount']['value']}")
            rows.append(self._row(refund["id"], "T1107", negative, refund["create_time"], refund))
        rows = [row for row in rows if start <= _parse_time(row["transaction_initiation_date"]) <= end]
        if params.get("transaction_status") not in (None, "S"):
            rows = []
        page_size = max(1, min(int(params.get("page_size") or 100), 500))
        page = max(1, int(params.get("page") or 1))
        pages_total = max(1, -(-len(rows) // page_size))
        return {
            "transaction_details": [
                {"transaction_info": row} for row in rows[(page - 1) * page_size : page * page_size]
            ],
            "account_number": "PEERMERCHANT01",
            "start_date": params["start_date"],
            "end_date": params["end_date"],
            "last_refreshed_datetime": _iso(self.now()),
            "page": page,
            "total_items": len(rows),
            "total_pages": pages_total,
            "links": [],
        }

    @staticmethod
    def _row(
        transaction_id: str, code: str, amount: dict[str, str], created: str, obj: dict[str, Any]
    ) -> dict[str, Any]:
        at = _parse_time(created).strftime("%Y-%m-%dT%H:%M:%S+0000")  # PayPal's reporting format
        return {
            "paypal_account_id": "PEERPAYER0001",
            "transaction_id": transaction_id,
            "transaction_event_code": code,
            "transaction_initiation_date": at,
            "transaction_updated_date": at,
            "transaction_amount": amount,
            "transaction_status": "S",
            "custom_field": obj.get("custom_id", ""),
        }

    def _verify(self, body: dict[str, Any]) -> str:
        sent = self._transmissions.get(str(body.get("transmission_id", "")))
        event: dict[str, Any] = body["webhook_event"] if isinstance(body.get("webhook_event"), dict) else {}
        if sent is None:
            return "FAILURE"
        expected = {
            "transmission_time": sent["transmission_time"],
            "transmission_sig": sent["transmission_sig"],
            "cert_url": sent["cert_url"],
            "auth_algo": ALGORITHM,
            "webhook_id": sent["webhook_id"],
        }
        matches = all(body.get(key) == value for key, value in expected.items())
        return "SUCCESS" if matches and event == json.loads(sent["body"]) else "FAILURE"

    # -- the approval page ----------------------------------------------------------------------

    def _page(self, request: Request) -> Reply:
        if request.method == "GET" and request.path == "/checkoutnow":
            order = self._orders.get(dict(request.params()).get("token", ""))
            if order is None:
                return html_reply(404, pages.message("Pay with PayPal", "No such order."))
            if order.obj["status"] not in ("CREATED", "PAYER_ACTION_REQUIRED", "APPROVED"):
                return html_reply(409, pages.message("Pay with PayPal", f"This order is {order.obj['status']}."))
            return html_reply(200, pages.approval(order.obj))
        if request.method == "POST" and request.path in ("/checkoutnow/approve", "/checkoutnow/cancel"):
            order = self._orders.get(dict(request.form()).get("token", ""))
            if order is None:
                return html_reply(404, pages.message("Pay with PayPal", "No such order."))
            if request.path.endswith("/cancel"):
                return see_other(_with_query(order.cancel_url, token=order.obj["id"]))
            self.order_approve(order)
            return see_other(_with_query(order.return_url, token=order.obj["id"], PayerID="PEERPAYER0001"))
        return html_reply(404, pages.message("Pay with PayPal", "Not found."))

    # -- webhooks -------------------------------------------------------------------------------

    def _emit(self, event_type: str, resource_type: str, resource: dict[str, Any], summary: str) -> None:
        event_id = f"WH-{_random(17)}-{_random(17)}"
        event = {
            "id": event_id,
            "event_version": "1.0",
            "create_time": _iso(self.now()),
            "resource_type": resource_type,
            "resource_version": "2.0",
            "event_type": event_type,
            "summary": summary,
            "resource": copy.deepcopy(self._public(resource)),
            "links": [self._link(f"/v1/notifications/webhooks-events/{event_id}", "self")],
        }
        self._events.append(event)
        if self.config.delivery == "hold":
            self._held.append(event)
        elif self.config.delivery == "deliver":
            self._deliveries.put(event, dataclasses.replace(self.config))

    def deliver(self, event: dict[str, Any], config: Config) -> int | None:
        """Send ``event`` to the configured URL, signed as PayPal signs; the HTTP status."""
        if not config.webhook_url:
            log.info("%s %s recorded; no webhook_url to send it to", event["event_type"], event["id"])
            return None
        body = json.dumps(event).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "PayPal/AUHD-214.0-58571302 (paypal-peer)"}
        if config.signing_key_pem and config.cert_url:
            headers = {
                **headers,
                **signed_headers(
                    body,
                    webhook_id=config.webhook_id,
                    private_key_pem=config.signing_key_pem,
                    cert_url=config.cert_url,
                    sent_at=transmission_time(),
                ),
            }
            with self._lock:
                self._transmissions[headers["PAYPAL-TRANSMISSION-ID"]] = {
                    "transmission_time": headers["PAYPAL-TRANSMISSION-TIME"],
                    "transmission_sig": headers["PAYPAL-TRANSMISSION-SIG"],
                    "cert_url": config.cert_url,
                    "webhook_id": config.webhook_id,
                    "body": body.decode(),
                }
        with self._delivery_lock:
            try:
                resp = requests.post(config.webhook_url, data=body, headers=headers, timeout=WEBHOOK_TIMEOUT)
            except requests.RequestException as e:
                log.warning("webhook %s %s to %s failed: %s", event["event_type"], event["id"], config.webhook_url, e)
                return None
        log.info("webhook %s %s: HTTP %s", event["event_type"], event["id"], resp.status_code)
        return resp.status_code

    # -- control API ----------------------------------------------------------------------------

    def _control(self, request: Request) -> Reply:
        route = (request.method, request.path)
        if route == ("GET", "/_peer/health"):
            return json_reply(200, {"ok": True})
        if route == ("POST", "/_peer/reset"):
            self._clear()
            self._deliveries.skip_queued()  # queued deliveries of the previous test
            return json_reply(200, {"ok": True})
        if route == ("POST", "/_peer/config"):
            return self._configure(_json_object(request))
        if route == ("GET", "/_peer/events"):
            return json_reply(200, self._events)
        if route == ("GET", "/_peer/stats"):
            return json_reply(200, {"token_requests": self._token_requests, "orders": len(self._orders)})
        if route == ("POST", "/_peer/tokens/revoke"):
            self._tokens.clear()
            return json_reply(200, {"ok": True})
        if route == ("POST", "/_peer/disputes"):
            return json_reply(201, self._dispute_open(_json_object(request)))
        match = CONTROL_PATH.fullmatch(request.path)
        if request.method != "POST" or match is None:
            return json_reply(404, {"error": "unknown control endpoint"})
        kind, target, verb, body = match["kind"], match["id"], match["verb"], _json_object(request)
        if (kind, verb) == ("orders", "approve"):
            order = self._order(target)
            self.order_approve(order)
            return json_reply(200, order.obj)
        if (kind, verb) == ("captures", "status") and target in self._captures:
            return json_reply(200, self._capture_status(self._captures[target], str(body.get("status", ""))))
        if (kind, verb) == ("captures", "refund") and target in self._captures:
            capture = self._captures[target]
            currency = capture["amount"]["currency_code"]
            asked = {"amount": {"currency_code": currency, "value": str(body["value"])}} if "value" in body else {}
            return json_reply(201, self._refund(capture, asked, note="refunded in the dashboard"))
        if (kind, verb) == ("disputes", "resolve") and target in self._disputes:
            return json_reply(200, self._dispute_resolve(self._disputes[target], str(body.get("outcome", ""))))
        return json_reply(404, {"error": f"no {kind} {target} to {verb}"})

    def _deliver_now(self, request: Request) -> Reply | None:
        """``/_peer/release`` and ``/_peer/events/<id>/replay``: delivered before the answer, with
        the lock released (the app may call back, e.g. ``verify-webhook-signature``)."""
        match = CONTROL_PATH.fullmatch(request.path)
        if (request.method, request.path) == ("POST", "/_peer/release"):
            with self._lock:
                events, self._held, config = self._held, [], dataclasses.replace(self.config)
        elif request.method == "POST" and match and (match["kind"], match["verb"]) == ("events", "replay"):
            with self._lock:
                events = [e for e in self._events if e["id"] == match["id"]]
                config = dataclasses.replace(self.config)
            if not events:
                return json_reply(404, {"error": f"no event {match['id']}"})
        else:
            return None
        return json_reply(200, [{"id": e["id"], "status": self.deliver(e, config)} for e in events])

    def _configure(self, changes: dict[str, Any]) -> Reply:
        fields = {field.name for field in dataclasses.fields(Config)}
        if not set(changes) <= fields:
            return json_reply(400, {"error": f"expected keys among {sorted(fields)}"})
        if "delivery" in changes and changes["delivery"] not in DELIVERY_MODES:
            return json_reply(400, {"error": f"delivery must be one of {DELIVERY_MODES}"})
        if "capture_status" in changes and changes["capture_status"] not in ("COMPLETED", "PENDING", "DECLINED"):
            return json_reply(400, {"error": "capture_status: COMPLETED, PENDING or DECLINED"})
        if changes.get("clock"):
            _parse_time(changes["clock"])
        self.config = dataclasses.replace(self.config, **changes)
        shown = dataclasses.asdict(self.config)
        shown["signing_key_pem"] = "(set)" if self.config.signing_key_pem else None
        return json_reply(200, shown)

    def _capture_status(self, capture: dict[str, Any], status: str) -> dict[str, Any]:
        if status not in CAPTURE_EVENTS:
            raise PaypalError(400, "INVALID_REQUEST", "INVALID_PARAMETER_VALUE", f"status: {sorted(CAPTURE_EVENTS)}")
        capture.update(status=status, update_time=_iso(self.now()))
        capture.pop("status_details", None)
        if status == "PENDING":
            capture["status_details"] = {"reason": "PENDING_REVIEW"}
        if status == "REVERSED":
            # PayPal's reversal event carries a refund-like object whose "up" is the capture
            reversal = self._refund_object(capture, dict(capture["amount"]), note="Payment reversed")
            self._emit("PAYMENT.CAPTURE.REVERSED", "refund", reversal, "A payment was reversed")
        else:
            self.capture_event(capture)
        return capture

    def _dispute_open(self, body: dict[str, Any]) -> dict[str, Any]:
        capture = self._captures.get(str(body.get("capture_id", "")))
        if capture is None:
            raise PaypalError(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", "no such capture")
        currency = capture["amount"]["currency_code"]
        value = _amount(currency, str(body["value"])) if "value" in body else Decimal(capture["amount"]["value"])
        self._dispute_counter += 1
        dispute_id, now = f"PP-D-{1000 + self._dispute_counter}", self.now()
        dispute = {
            "dispute_id": dispute_id,
            "create_time": _iso(now),
            "update_time": _iso(now),
            "disputed_transactions": [
                {
                    "seller_transaction_id": capture["id"],
                    "buyer_transaction_id": _random(17),
                    "create_time": capture["create_time"],
                    "transaction_status": "COMPLETED",
                    "gross_amount": dict(capture["amount"]),
                    "custom": capture.get("custom_id", ""),
                }
            ],
            "reason": str(body.get("reason") or "MERCHANDISE_OR_SERVICE_NOT_RECEIVED"),
            "status": "WAITING_FOR_SELLER_RESPONSE",
            "dispute_amount": _money(currency, value),
            "dispute_life_cycle_stage": "CHARGEBACK" if body.get("chargeback") else "INQUIRY",
            "dispute_channel": "INTERNAL",
            "seller_response_due_date": _iso(now + timedelta(days=10)),
            "links": [self._link(f"/v1/customer/disputes/{dispute_id}", "self")],
        }
        self._disputes[dispute_id] = dispute
        self._emit("CUSTOMER.DISPUTE.CREATED", "dispute", dispute, f"A new dispute opened with Case # {dispute_id}")
        return dispute

    def _dispute_resolve(self, dispute: dict[str, Any], outcome: str) -> dict[str, Any]:
        if outcome not in DISPUTE_OUTCOMES:
            raise PaypalError(400, "INVALID_REQUEST", "INVALID_PARAMETER_VALUE", f"outcome: {DISPUTE_OUTCOMES}")
        dispute.update(status="RESOLVED", update_time=_iso(self.now()), dispute_outcome={"outcome_code": outcome})
        dispute.pop("seller_response_due_date", None)
        summary = f"A dispute was resolved with case # {dispute['dispute_id']}"
        self._emit("CUSTOMER.DISPUTE.RESOLVED", "dispute", dispute, summary)
        return dispute


def serve(*, host: str, port: int, client_id: str, client_secret: str, config: Config | None = None) -> None:
    """Run the fake until interrupted. The links it hands out use ``host`` and the port;
    ``config`` is its configuration from the start (and again after ``/_peer/reset``)."""
    server = PeerServer(host, port, logger=log)
    server.peer = Peer(base_url=server.base_url, client_id=client_id, client_secret=client_secret, config=config)
    log.info("paypal peer on %s", server.base_url)
    with server:  # closes the socket however serving ends
        server.serve_forever()
