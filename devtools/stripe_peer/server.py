"""The peer's HTTP server: Checkout Sessions and the hosted test pages in front of localstripe.

One base URL (the app's ``STRIPE_API_BASE``) serves:

* ``/v1/checkout/sessions...``: created, retrieved and expired here (localstripe has none);
* ``POST /v1/refunds``: checked here (never more than is left of the charge: Stripe's
  ``amount_too_large`` and ``charge_already_refunded``), made at localstripe, then announced
  with ``charge.refunded`` and ``refund.created``, as Stripe does (localstripe sends neither);
* ``GET /v1/payment_intents``: listed here, newest first, with the ``created`` filter;
* ``/v1/disputes...`` and ``/v1/radar/early_fraud_warnings...``: served here (localstripe has
  none); tests open and close disputes and raise warnings through the control API;
* every other ``/v1/...``: proxied to localstripe, PaymentIntents and refunds reshaped as Stripe
  shows them (``latest_charge`` expandable, with the card facts of
  :mod:`devtools.stripe_peer.cards`; a refund names its ``payment_intent``);
* ``/checkout/<id>``: the hosted test checkout page, 3-D Secure challenge included;
* ``/_peer/...``: the control API for tests (loopback clients only): events, delivery, reset,
  and what happens at Stripe without the app asking: a refund made in the dashboard, a dispute
  opened and closed by the card network, an early fraud warning from the issuer, a
  PaymentIntent's creation time moved back (for reports over fixed days).

Webhooks: localstripe sends its own events (``payment_intent.*``, ``customer.*``) to the peer,
not to the app, so that every event, the peer's ``checkout.session.*`` and localstripe's alike,
goes through one log (``GET /_peer/events``) and one delivery switch (deliver, hold, drop), and
is signed with the app's secret by the official SDK. Deliveries run on one background thread, in
order, started while the browser is redirected: like Stripe, no order between the redirect and
the webhook is promised. Failed deliveries are not retried; tests replay from the event log.

A stdlib threading server (:mod:`devtools.peer_http`, shared with the PayPal peer) and blocking
``requests`` calls keep this small; POSTs that carry an Idempotency-Key (the SDK sends one with
every POST) are serialised by one lock, which is what makes replays race-free; refunds take the
same lock with or without a key, so two refunds of one charge never both pass the "what is left"
check. Throughput is not a goal.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import requests
import stripe

from devtools.localstripe_launcher import is_loopback
from devtools.peer_http import PeerServer, Reply, Request, WebhookQueue, html_reply, json_reply, see_other, text_reply
from devtools.stripe_peer import cards, objects, pages
from devtools.stripe_peer.objects import StripeError

log = logging.getLogger("stripe_peer")

DELIVERY_MODES = ("deliver", "hold", "drop")
INTERNAL_KEY = "sk_test_stripe_peer"  # the peer's own calls to localstripe (it takes any sk_ key)
LOCALSTRIPE_TIMEOUT = 30
WEBHOOK_TIMEOUT = 10
SESSION_PATH = re.compile(r"/v1/checkout/sessions/(?P<id>[^/]+)(?P<expire>/expire)?")
PAGE_PATH = re.compile(r"/checkout/(?P<id>cs_test_\w+)(?:/(?P<step>pay|3ds))?")
REFUND_PATH = re.compile(r"/v1/refunds(?:/[^/]+)?")
SERVED_LIST_PATH = re.compile(r"/v1/(?P<kind>disputes|radar/early_fraud_warnings)(?:/(?P<id>[^/]+))?")
SERVED_LIST_PARAMS = ("payment_intent", "charge", "limit", "starting_after")
PI_LIST_PARAMS = ("created", "customer", "limit", "starting_after")
CONTROL_DISPUTE_CLOSE = re.compile(r"/_peer/disputes/(?P<id>dp_\w+)/close")
CONTROL_BACKDATE = re.compile(r"/_peer/payment_intents/(?P<id>pi_\w+)/backdate")
SESSION_EXPANDABLE = ("payment_intent", "payment_intent.latest_charge", "customer")
AUTHENTICATION_FAILURE = {
    "code": "payment_intent_authentication_failure",
    "message": "The provided PaymentMethod has failed authentication.",
    "type": "invalid_request_error",
}


@dataclasses.dataclass
class WebhookConfig:
    url: str | None = None
    secret: str | None = None
    delivery: str = "deliver"


@dataclasses.dataclass
class Pending:
    """A PaymentIntent waiting on the 3-D Secure page."""

    payment_intent: str
    client_secret: str
    localstripe_asked: bool  # localstripe wants ``/_authenticate``; otherwise the peer confirms after


@dataclasses.dataclass
class Session:
    obj: dict[str, Any]
    item_name: str
    api_key: str
    pending: Pending | None = None


def _take_charge_expansions(pairs: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], bool]:
    """Remove ``expand`` entries for ``latest_charge`` (the peer expands it, not localstripe)."""
    kept = [
        (k, v) for k, v in pairs if not ((k == "expand" or k.startswith("expand[")) and v.startswith("latest_charge"))
    ]
    return kept, len(kept) != len(pairs)


class Peer:
    """All of the peer's state (sessions, events, card facts, idempotent replies), under one lock."""

    def __init__(self, *, base_url: str, localstripe_url: str, webhook: WebhookConfig) -> None:
        self.base_url = base_url
        self.localstripe_url = localstripe_url.rstrip("/")
        self._initial = webhook
        self._config = dataclasses.replace(webhook)
        self._inbound_secret = objects.random_id("whsec_")
        self._lock = threading.RLock()
        self._delivery_lock = threading.Lock()
        self._registered = False
        self._clear()
        self._deliveries = WebhookQueue(self._deliver, thread_name="stripe-peer-webhooks")

    def _clear(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._events: list[dict[str, Any]] = []
        self._held: list[dict[str, Any]] = []
        self._facts: dict[str, cards.CardFacts] = {}  # PaymentIntent id -> card facts
        self._replays: dict[tuple[str, str], tuple[str, Reply]] = {}  # (key, Idempotency-Key) -> first reply
        self._served: dict[str, dict[str, dict[str, Any]]] = {"disputes": {}, "radar/early_fraud_warnings": {}}
        self._created: dict[str, int] = {}  # PaymentIntent id -> backdated ``created``

    # -- entry point ---------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        """The answer to one HTTP request (:mod:`devtools.peer_http` serves it). Every ``/v1/``
        answer carries a fresh ``Request-Id``, as Stripe's do, an idempotent replay's too."""
        reply = self._answer(request)
        if request.path.startswith("/v1/"):
            return dataclasses.replace(reply, headers={"Request-Id": objects.random_id("req_", 14), **reply.headers})
        return reply

    def _answer(self, request: Request) -> Reply:
        try:
            if request.path.startswith("/v1/"):
                return self._api(request)
            if request.path.startswith("/_peer/"):
                if not is_loopback(request.client):
                    return text_reply(403, "the control API answers loopback clients only")
                return self._control(request)
            match = PAGE_PATH.fullmatch(request.path)
            if match:
                return self._page(request, match["id"], match["step"] or "")
            return text_reply(404, "not found")
        except StripeError as e:
            return json_reply(e.status, {"error": e.body})
        except requests.RequestException as e:
            log.warning("localstripe call failed: %s", e)
            return json_reply(502, {"error": {"type": "api_error", "message": f"localstripe unreachable: {e}"}})
        except Exception as e:  # a bug in the double must reach the caller as an HTTP 500, not a reset
            log.exception("stripe peer failed on %s %s", request.method, request.path)
            return json_reply(500, {"error": {"type": "api_error", "message": f"stripe peer bug: {e!r}"}})

    # -- localstripe ---------------------------------------------------------------------------

    def _ls(self, method: str, path: str, key: str, data: Mapping[str, str] | None = None) -> requests.Response:
        return requests.request(
            method,
            self.localstripe_url + path,
            data=data,
            headers={"Authorization": f"Bearer {key}"},
            timeout=LOCALSTRIPE_TIMEOUT,
        )

    @staticmethod
    def _ls_error(status: int, payload: Any) -> StripeError:
        """localstripe's errors with Stripe's type and code (a decline is a ``card_error``)."""
        error = payload.get("error") if isinstance(payload, dict) else None
        error = error if isinstance(error, dict) else {}
        kind, code = error.get("type"), error.get("code")
        if status == 402:
            kind = "card_error"
        if status == 404:
            code = code or "resource_missing"
        out = StripeError(
            status, str(error.get("message", "localstripe error")), param=error.get("param"), code=code, kind=kind
        )
        out.body.update({k: v for k, v in error.items() if k not in out.body})
        if status == 402:
            out.body.setdefault("decline_code", "generic_decline")
        return out

    def _ls_json(self, method: str, path: str, key: str, data: Mapping[str, str] | None = None) -> dict[str, Any]:
        return self._checked(self._ls(method, path, key, data))

    def _checked(self, resp: requests.Response) -> dict[str, Any]:
        payload: dict[str, Any] = resp.json()
        if resp.status_code >= 400:
            raise self._ls_error(resp.status_code, payload)
        return payload

    def register(self) -> None:
        """Have localstripe send its events to the peer (its webhook list lives in its memory)."""
        resp = requests.post(
            f"{self.localstripe_url}/_config/webhooks/peer",
            data={"url": f"{self.base_url}/_peer/localstripe-webhook", "secret": self._inbound_secret},
            timeout=LOCALSTRIPE_TIMEOUT,
        )
        resp.raise_for_status()
        self._registered = True

    # -- /v1 ------------------------------------------------------------------------------------

    def _api(self, request: Request) -> Reply:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not key.startswith("sk_test_"):
            raise StripeError(401, "Invalid API Key provided: the test peer accepts sk_test_... keys only")
        idempotency_key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or not idempotency_key:
            return self._route(request, key)
        fingerprint = hashlib.sha256(f"{request.path}?{request.query}\n".encode() + request.body).hexdigest()
        with self._lock:
            seen = self._replays.get((key, idempotency_key))
            if seen is not None:
                if seen[0] != fingerprint:
                    message = "Keys for idempotent requests can only be used with the same parameters."
                    raise StripeError(400, message, kind="idempotency_error")
                return dataclasses.replace(seen[1], headers={**seen[1].headers, "Idempotent-Replayed": "true"})
            reply = self._route(request, key)
            if reply.status < 400 or reply.status == 402:  # Stripe keeps results, not validation errors
                self._replays[(key, idempotency_key)] = (fingerprint, reply)
            return reply

    def _route(self, request: Request, key: str) -> Reply:
        method, path = request.method, request.path
        served = SERVED_LIST_PATH.fullmatch(path) if method == "GET" else None
        served_here = path.startswith("/v1/checkout/") or served is not None
        if not (served_here or (method, path) in (("POST", "/v1/refunds"), ("GET", "/v1/payment_intents"))):
            return self._proxy(request, key)
        params = objects.decode_form(request.params())
        if method == "POST":
            params.update(objects.decode_form(request.form()))
        if path == "/v1/refunds":
            return json_reply(200, self._create_refund(key, params))
        if path == "/v1/payment_intents":
            return json_reply(200, self._list_payment_intents(key, params))
        if served is not None:
            return json_reply(200, self._served_object(served["kind"], served["id"], params))
        if method == "POST" and path == "/v1/checkout/sessions":
            return self._create_session(key, params)
        match = SESSION_PATH.fullmatch(path)
        if match and method == "GET" and not match["expire"]:
            with self._lock:
                return json_reply(200, self._present(self._session(match["id"]), objects.expansions(params), key))
        if match and method == "POST" and match["expire"]:
            return self._expire(match["id"], objects.expansions(params), key)
        raise StripeError(404, f"Unrecognized request URL ({method}: {path}) for the test peer")

    def _proxy(self, request: Request, key: str) -> Reply:
        pairs, body, headers = request.params(), request.body, request.headers
        expand_charge = False
        if request.path.startswith("/v1/payment_intents"):
            pairs, expand_charge = _take_charge_expansions(pairs)
            if body and headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
                form, in_body = _take_charge_expansions(request.form())
                if in_body:
                    body, expand_charge = urlencode(form).encode(), True
        forwarded = {
            name: headers[name] for name in ("Authorization", "Idempotency-Key", "Content-Type") if name in headers
        }
        resp = requests.request(
            request.method,
            self.localstripe_url + request.path,
            params=pairs,
            data=body or None,
            headers=forwarded,
            timeout=LOCALSTRIPE_TIMEOUT,
        )
        try:
            payload = resp.json()
        except ValueError:
            return Reply(resp.status_code, resp.content, resp.headers.get("Content-Type", "text/plain"))
        if resp.status_code >= 400:
            error = self._ls_error(resp.status_code, payload)
            return json_reply(error.status, {"error": error.body})
        if isinstance(payload, dict) and payload.get("object") == "payment_intent":
            with self._lock:
                payload = self._present_pi(payload, key, expand_charge=expand_charge)
        if isinstance(payload, dict) and REFUND_PATH.fullmatch(request.path):
            if payload.get("object") == "list":
                payload["data"] = [self._present_refund(item, key) for item in payload.get("data") or []]
                payload.pop("total_count", None)
            else:
                payload = self._present_refund(payload, key)
        return json_reply(resp.status_code, payload)

    def _present_refund(self, ls_refund: dict[str, Any], key: str) -> dict[str, Any]:
        payment_intent = ls_refund.get("payment_intent")
        if not payment_intent and ls_refund.get("charge"):
            payment_intent = self._ls_json("GET", f"/v1/charges/{ls_refund['charge']}", key).get("payment_intent")
        return objects.refund(ls_refund, payment_intent=payment_intent)

    def _present_pi(self, ls_pi: dict[str, Any], key: str, *, expand_charge: bool) -> dict[str, Any]:
        facts = self._facts.get(ls_pi["id"])
        charge_obj = None
        latest = ls_pi.get("latest_charge")
        if expand_charge and latest:
            ls_charge = latest if isinstance(latest, dict) else self._ls_json("GET", f"/v1/charges/{latest}", key)
            if facts is None and ls_charge.get("payment_method"):
                try:
                    pm = self._ls_json("GET", f"/v1/payment_methods/{ls_charge['payment_method']}", key)
                    facts = cards.facts_from_payment_method(pm)
                except StripeError:
                    facts = None
            charge_obj = objects.charge(ls_charge, facts)
        out = objects.payment_intent(ls_pi, charge_obj=charge_obj, facts=facts)
        out["created"] = self._created.get(out["id"], out["created"])
        return out

    def _list_payment_intents(self, key: str, params: dict[str, Any]) -> dict[str, Any]:
        """``GET /v1/payment_intents`` (localstripe filters none): newest first, by ``created``
        and ``customer``, paged; ties keep the order of creation, newest first."""
        for name in params:
            if name not in PI_LIST_PARAMS:
                raise StripeError(400, f"Received unknown parameter: {name}", param=name)
        in_window = objects.created_filter(params["created"]) if "created" in params else lambda _: True
        customer = params.get("customer")
        with self._lock:
            every: list[dict[str, Any]] = []
            query: dict[str, str] = {"limit": "100"}
            while True:  # localstripe pages in the order of creation
                listed = self._ls_json("GET", "/v1/payment_intents?" + urlencode(query), key)
                every.extend(listed["data"])
                if not listed["has_more"] or not listed["data"]:
                    break
                query["starting_after"] = listed["data"][-1]["id"]
            shown = [self._present_pi(pi, key, expand_charge=False) for pi in reversed(every)]
        shown.sort(key=lambda pi: -pi["created"])  # stable: same second, newest created first
        kept = [pi for pi in shown if in_window(pi["created"]) and customer in (None, pi["customer"])]
        return objects.page(kept, params, "/v1/payment_intents")

    # -- refunds --------------------------------------------------------------------------------

    def _refundable_charge(self, key: str, payment_intent: str | None, charge_id: str | None) -> dict[str, Any]:
        """localstripe's succeeded charge of a PaymentIntent (or the charge named)."""
        if payment_intent is not None:
            pi = self._ls_json("GET", f"/v1/payment_intents/{payment_intent}", key)
            latest = pi.get("latest_charge")
            charge_id = latest["id"] if isinstance(latest, dict) else latest
            if pi["status"] != "succeeded" or not charge_id:
                raise StripeError(
                    400, f"This PaymentIntent ({payment_intent}) does not have a successful charge to refund."
                )
        ls_charge = self._ls_json("GET", f"/v1/charges/{charge_id}", key)
        if ls_charge["status"] != "succeeded":
            raise StripeError(400, f"Charge {charge_id} has not succeeded: there is nothing to refund.")
        return ls_charge

    def _create_refund(self, key: str, params: dict[str, Any]) -> dict[str, Any]:
        """A refund of what is left of the charge at most, then ``charge.refunded`` (the charge,
        ``amount_refunded`` up to date) and ``refund.created``, as Stripe sends for every refund."""
        payment_intent, charge_id, metadata = objects.refund_request(params)
        with self._lock:
            ls_charge = self._refundable_charge(key, payment_intent, charge_id)
            amount = objects.refund_amount(params.get("amount"), ls_charge=ls_charge)
            data = {"charge": ls_charge["id"], "amount": str(amount)}
            data.update({f"metadata[{k}]": v for k, v in metadata.items()})
            ls_refund = self._ls_json("POST", "/v1/refunds", key, data)
            refund = objects.refund(ls_refund, payment_intent=ls_charge.get("payment_intent"))
            refunded = self._ls_json("GET", f"/v1/charges/{ls_charge['id']}", key)
            charge_obj = objects.charge(refunded, self._facts.get(refunded.get("payment_intent") or ""))
            self._emit(objects.event("charge.refunded", charge_obj))
            self._emit(objects.event("refund.created", refund))
            return refund

    # -- disputes and early fraud warnings (the peer's own) -------------------------------------

    def _served_object(self, kind: str, object_id: str | None, params: dict[str, Any]) -> dict[str, Any]:
        """``GET /v1/disputes[/<id>]``, ``GET /v1/radar/early_fraud_warnings[/<id>]``."""
        with self._lock:
            stored = self._served[kind]
            if object_id is not None:
                if object_id not in stored:
                    name = "dispute" if kind == "disputes" else "radar.early_fraud_warning"
                    raise StripeError(404, f"No such {name}: '{object_id}'", param="id", code="resource_missing")
                return copy.deepcopy(stored[object_id])
            for name in params:
                if name not in SERVED_LIST_PARAMS:
                    raise StripeError(400, f"Received unknown parameter: {name}", param=name)
            newest_first = [copy.deepcopy(obj) for obj in reversed(stored.values())]
        kept = [
            obj
            for obj in newest_first
            if params.get("payment_intent") in (None, obj["payment_intent"])
            and params.get("charge") in (None, obj["charge"])
        ]
        return objects.page(kept, params, f"/v1/{kind}")

    def _succeeded_charge(self, changes: dict[str, Any]) -> dict[str, Any]:
        payment_intent = changes.get("payment_intent")
        if not isinstance(payment_intent, str):
            raise StripeError(400, "payment_intent (a pi_... id) is required", param="payment_intent")
        return self._refundable_charge(INTERNAL_KEY, payment_intent, None)

    def _open_dispute(self, changes: dict[str, Any]) -> dict[str, Any]:
        reason = changes.get("reason", "fraudulent")
        if reason not in objects.DISPUTE_REASONS:
            raise StripeError(400, f"reason must be one of {objects.DISPUTE_REASONS}", param="reason")
        with self._lock:
            ls_charge = self._succeeded_charge(changes)
            amount = changes.get("amount", ls_charge["amount"])
            if isinstance(amount, bool) or not (isinstance(amount, int) and 0 < amount <= ls_charge["amount"]):
                raise StripeError(400, f"amount must be 1 to {ls_charge['amount']}", param="amount")
            dispute = objects.new_dispute(ls_charge, amount=amount, reason=reason)
            self._served["disputes"][dispute["id"]] = dispute
            self._emit(objects.event("charge.dispute.created", dispute))
            return dispute

    def _close_dispute(self, dispute_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        status = changes.get("status")
        if status not in objects.DISPUTE_OUTCOMES:
            raise StripeError(400, f"status must be one of {objects.DISPUTE_OUTCOMES}", param="status")
        with self._lock:
            dispute = self._served["disputes"].get(dispute_id)
            if dispute is None:
                raise StripeError(404, f"No such dispute: '{dispute_id}'", code="resource_missing")
            if dispute["status"] in objects.DISPUTE_OUTCOMES:
                raise StripeError(400, f"Dispute {dispute_id} is already closed ({dispute['status']}).")
            dispute["status"] = status
            self._emit(objects.event("charge.dispute.closed", dispute))
            return copy.deepcopy(dispute)

    def _raise_fraud_warning(self, changes: dict[str, Any]) -> dict[str, Any]:
        fraud_type, actionable = changes.get("fraud_type", "made_with_stolen_card"), changes.get("actionable", True)
        if fraud_type not in objects.FRAUD_TYPES:
            raise StripeError(400, f"fraud_type must be one of {objects.FRAUD_TYPES}", param="fraud_type")
        if not isinstance(actionable, bool):
            raise StripeError(400, "actionable must be true or false", param="actionable")
        with self._lock:
            ls_charge = self._succeeded_charge(changes)
            warning = objects.new_early_fraud_warning(ls_charge, fraud_type=fraud_type, actionable=actionable)
            self._served["radar/early_fraud_warnings"][warning["id"]] = warning
            self._emit(objects.event("radar.early_fraud_warning.created", warning))
            return warning

    # -- Checkout Sessions ----------------------------------------------------------------------

    def _customer_exists(self, key: str, customer: str) -> bool:
        return customer.startswith("cus_") and self._ls("GET", f"/v1/customers/{customer}", key).status_code == 200

    def _create_session(self, key: str, params: dict[str, Any]) -> Reply:
        expand = objects.expansions(params)
        obj, item_name = objects.new_session(
            params, base_url=self.base_url, customer_exists=lambda c: self._customer_exists(key, c)
        )
        with self._lock:
            session = self._sessions[obj["id"]] = Session(obj, item_name, key)
            return json_reply(200, self._present(session, expand, key))

    def _session(self, session_id: str) -> Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise StripeError(
                404, f"No such checkout.session: '{session_id}'", param="session", code="resource_missing"
            )
        if session.obj["status"] == "open" and time.time() >= session.obj["expires_at"]:
            self._close_expired(session)
        return session

    def _present(self, session: Session, expand: list[str], key: str) -> dict[str, Any]:
        obj = objects.public(session.obj)
        for path in expand:
            if path not in SESSION_EXPANDABLE:
                raise StripeError(400, f"This property cannot be expanded ({path}).", param="expand")
        if obj["payment_intent"] and any(p.startswith("payment_intent") for p in expand):
            ls_pi = self._ls_json("GET", f"/v1/payment_intents/{obj['payment_intent']}", key)
            obj["payment_intent"] = self._present_pi(ls_pi, key, expand_charge="payment_intent.latest_charge" in expand)
        if obj["customer"] and "customer" in expand:
            obj["customer"] = self._ls_json("GET", f"/v1/customers/{obj['customer']}", key)
        return obj

    def _close_expired(self, session: Session) -> None:
        if session.pending is not None:  # Stripe cancels the session's PaymentIntent too
            self._ls("POST", f"/v1/payment_intents/{session.pending.payment_intent}/cancel", session.api_key)
            session.pending = None
        session.obj.update(status="expired", url=None)
        self._emit(objects.event("checkout.session.expired", objects.public(session.obj)))

    def _expire(self, session_id: str, expand: list[str], key: str) -> Reply:
        with self._lock:
            session = self._session(session_id)
            status = session.obj["status"]
            if status != "open":
                raise StripeError(
                    400, f"Only Checkout Sessions with a status in [open] can be expired; this one is {status}."
                )
            self._close_expired(session)
            return json_reply(200, self._present(session, expand, key))

    # -- the hosted pages -----------------------------------------------------------------------

    def _page(self, request: Request, session_id: str, step: str) -> Reply:
        method = request.method
        with self._lock:
            try:
                session = self._session(session_id)
            except StripeError:
                return html_reply(404, pages.not_found())
            if session.obj["status"] != "open":
                return html_reply(200, pages.closed(session.obj, session.item_name))
            form = dict(request.form())
            if method == "GET" and step == "":
                return html_reply(200, pages.checkout(session.obj, session.item_name))
            if method == "GET" and step == "3ds":
                if session.pending is None:
                    return see_other(f"{self.base_url}/checkout/{session_id}")
                return html_reply(
                    200, pages.three_d_secure(session.obj, session.item_name, session.pending.payment_intent)
                )
            if method == "POST" and step == "pay":
                return self._pay(session, form.get("card_number", ""))
            if method == "POST" and step == "3ds":
                return self._authenticate(session, form)
            return text_reply(405, "method not allowed")

    def _pay(self, session: Session, raw_number: str) -> Reply:
        number = "".join(ch for ch in raw_number if ch.isdigit())
        if not cards.luhn_ok(number):
            return html_reply(400, pages.checkout(session.obj, session.item_name, "Your card number is invalid."))
        facts, key, obj = cards.facts_for(number), session.api_key, session.obj
        ls_number = cards.localstripe_number(number)
        del number, raw_number  # from here on only derived facts
        pm = self._ls_json(
            "POST",
            "/v1/payment_methods",
            key,
            {
                "type": "card",
                "card[number]": ls_number,
                "card[exp_month]": str(cards.EXP_MONTH),
                "card[exp_year]": str(cards.EXP_YEAR),
                "card[cvc]": "123",
            },
        )
        # request_three_d_secure=any/challenge: Stripe challenges every card, localstripe only its own.
        requested = obj["payment_method_options"].get("card", {}).get("request_three_d_secure", "automatic")
        peer_challenges = requested in ("any", "challenge") and ls_number not in cards.LOCALSTRIPE_CHALLENGES
        data = {"amount": str(obj["amount_total"]), "currency": obj["currency"], "payment_method": pm["id"]}
        data.update({f"metadata[{k}]": v for k, v in obj["_payment_intent_metadata"].items()})
        if obj["customer"]:
            data["customer"] = obj["customer"]
        if not peer_challenges:
            data["confirm"] = "true"
        resp = self._ls("POST", "/v1/payment_intents", key, data)
        if resp.status_code == 402:
            return self._declined(session, resp.json(), facts)
        pi = self._checked(resp)
        self._facts[pi["id"]] = facts
        if peer_challenges or pi["status"] == "requires_action":
            session.pending = Pending(pi["id"], pi["client_secret"], localstripe_asked=not peer_challenges)
            return see_other(f"{self.base_url}/checkout/{obj['id']}/3ds")
        return self._finish(session, pi)

    def _authenticate(self, session: Session, form: dict[str, str]) -> Reply:
        pending = session.pending
        if pending is None or form.get("payment_intent") != pending.payment_intent:
            return see_other(f"{self.base_url}/checkout/{session.obj['id']}")
        session.pending = None
        pi_id, key, success = pending.payment_intent, session.api_key, form.get("outcome") == "success"
        facts = self._facts.get(pi_id)
        if facts is not None:
            self._facts[pi_id] = facts = dataclasses.replace(
                facts, three_d_secure="authenticated" if success else "failed"
            )
        if pending.localstripe_asked:
            outcome = {"client_secret": pending.client_secret, "success": "true" if success else "false"}
            resp = self._ls("POST", f"/v1/payment_intents/{pi_id}/_authenticate", key, outcome)
        else:
            resp = self._ls("POST", f"/v1/payment_intents/{pi_id}/{'confirm' if success else 'cancel'}", key)
        if resp.status_code == 402:
            return self._declined(session, resp.json(), facts)
        pi = self._checked(resp)
        if success:
            return self._finish(session, pi)
        # localstripe sends nothing when authentication fails; Stripe sends payment_failed.
        failed_pi = self._present_pi(pi, key, expand_charge=False)
        failed_pi["last_payment_error"] = failed_pi["last_payment_error"] or dict(AUTHENTICATION_FAILURE)
        self._emit(objects.event("payment_intent.payment_failed", failed_pi))
        return html_reply(402, pages.failed(session.obj, "3-D Secure authentication failed. No payment was taken."))

    def _declined(self, session: Session, payload: dict[str, Any], facts: cards.CardFacts | None) -> Reply:
        charge_id = payload.get("error", {}).get("charge")
        if charge_id and facts is not None:  # remember the facts for the declined PaymentIntent too
            charge = self._ls_json("GET", f"/v1/charges/{charge_id}", session.api_key)
            if charge.get("payment_intent"):
                self._facts[charge["payment_intent"]] = facts
        reason = (facts.decline_code if facts else None) or "generic_decline"
        return html_reply(402, pages.failed(session.obj, f"Your card was declined ({reason})."))

    def _finish(self, session: Session, pi: dict[str, Any]) -> Reply:
        if pi["status"] != "succeeded":
            return html_reply(402, pages.failed(session.obj, f"The payment did not succeed ({pi['status']})."))
        obj = session.obj
        obj.update(
            status="complete",
            payment_status="paid",
            payment_intent=pi["id"],
            url=None,
            customer_details=objects.completed_customer_details(obj),
        )
        self._emit(objects.event("checkout.session.completed", objects.public(obj)))
        return see_other(obj["success_url"].replace("{CHECKOUT_SESSION_ID}", obj["id"]))

    # -- webhooks -------------------------------------------------------------------------------

    def _emit(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._events.append(event)
            if self._config.delivery == "hold":
                self._held.append(event)
            elif self._config.delivery == "deliver":
                self._deliveries.put(event, dataclasses.replace(self._config))

    def _deliver(self, event: dict[str, Any], config: WebhookConfig) -> None:
        if not config.url:
            log.info("%s %s recorded; no webhook_url to send it to", event["type"], event["id"])
            return
        payload = json.dumps(event, indent=2)
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "Stripe/1.0 (stripe-peer)"}
        if config.secret:
            headers["Stripe-Signature"] = stripe.WebhookSignature.generate_signature_header(
                payload=payload, secret=config.secret, timestamp=int(time.time())
            )
        with self._delivery_lock:
            try:
                resp = requests.post(config.url, data=payload.encode(), headers=headers, timeout=WEBHOOK_TIMEOUT)
            except requests.RequestException as e:
                log.warning("webhook %s %s to %s failed: %s", event["type"], event["id"], config.url, e)
                return
        log.info("webhook %s %s to %s: HTTP %s", event["type"], event["id"], config.url, resp.status_code)

    def _inbound(self, headers: Mapping[str, str], body: bytes) -> Reply:
        """An event from localstripe: checked, reshaped, then handled like the peer's own."""
        payload = body.decode()
        try:
            stripe.WebhookSignature.verify_header(payload, headers.get("Stripe-Signature"), self._inbound_secret, 300)
        except stripe.SignatureVerificationError:
            return text_reply(400, "bad signature")
        ls_event = json.loads(payload)
        obj = ls_event["data"]["object"]
        with self._lock:  # reset holds it too: an event is either cleared by it or known stale
            # localstripe sends a second after the fact: an event from before a reset is stale.
            if self._ls("GET", f"/v1/events/{ls_event['id']}", INTERNAL_KEY).status_code == 404:
                log.info("dropped stale localstripe event %s", ls_event["id"])
                return text_reply(200, "stale")
            if obj.get("object") == "payment_intent":
                obj = self._present_pi(obj, INTERNAL_KEY, expand_charge=False)
            self._emit(objects.event(ls_event["type"], obj, event_id=ls_event["id"], created=ls_event["created"]))
        return text_reply(200, "ok")

    # -- control API ----------------------------------------------------------------------------

    def _control(self, request: Request) -> Reply:
        route = (request.method, request.path)
        if route == ("GET", "/_peer/health"):
            if not self._registered:
                try:
                    self.register()
                except requests.RequestException as e:
                    return text_reply(503, f"localstripe not ready: {e}")
            return text_reply(200, "ok")
        if route == ("POST", "/_peer/localstripe-webhook"):
            return self._inbound(request.headers, request.body)
        if route == ("GET", "/_peer/events"):
            with self._lock:
                return json_reply(200, self._events)
        if route == ("POST", "/_peer/config"):
            try:
                changes = json.loads(request.body or b"{}")
            except ValueError:
                return json_reply(400, {"error": "expected a JSON object"})
            return self._configure(changes)
        if route == ("POST", "/_peer/release"):
            with self._lock:
                held, self._held, config = self._held, [], dataclasses.replace(self._config)
                if held and not config.url:
                    self._held = held
                    return json_reply(409, {"error": "no webhook_url configured; events stay held"})
            for event in held:
                self._deliver(event, config)
            return json_reply(200, [event["id"] for event in held])
        if request.method == "POST":
            made = self._control_stripe_side(request.path, request.body)
            if made is not None:
                return made
        if route == ("POST", "/_peer/reset"):
            with self._lock:
                requests.delete(f"{self.localstripe_url}/_config/data", timeout=LOCALSTRIPE_TIMEOUT).raise_for_status()
                self._clear()
                self._deliveries.skip_queued()  # queued deliveries of the previous test
                self._config = dataclasses.replace(self._initial)
                self.register()
            return text_reply(200, "ok")
        return text_reply(404, "unknown control endpoint")

    def _control_stripe_side(self, path: str, body: bytes) -> Reply | None:
        """What happens at Stripe without the app asking; ``None`` for another control route."""
        action = self._stripe_side_action(path)
        if action is None:
            return None
        try:
            changes = json.loads(body or b"{}")
        except ValueError:
            changes = None
        if not isinstance(changes, dict):
            raise StripeError(400, "expected a JSON object")
        return json_reply(200, action(changes))

    def _stripe_side_action(self, path: str) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
        if close := CONTROL_DISPUTE_CLOSE.fullmatch(path):
            return functools.partial(self._close_dispute, close["id"])
        if backdate := CONTROL_BACKDATE.fullmatch(path):
            return functools.partial(self._backdate, backdate["id"])
        actions: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "/_peer/refunds": self._dashboard_refund,
            "/_peer/disputes": self._open_dispute,
            "/_peer/early_fraud_warnings": self._raise_fraud_warning,
        }
        return actions.get(path)

    def _dashboard_refund(self, changes: dict[str, Any]) -> dict[str, Any]:
        """A refund made in Stripe's dashboard: no metadata, no Idempotency-Key."""
        amount = changes.get("amount")
        if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int)):
            raise StripeError(400, "amount must be an integer", param="amount")
        params = {"payment_intent": changes.get("payment_intent")}
        if amount is not None:
            params["amount"] = str(amount)
        return self._create_refund(INTERNAL_KEY, params)

    def _backdate(self, payment_intent: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Move a PaymentIntent's ``created`` (reports over fixed days, whatever the clock)."""
        created = changes.get("created")
        if isinstance(created, bool) or not isinstance(created, int) or created <= 0:
            raise StripeError(400, "created must be a Unix timestamp", param="created")
        with self._lock:
            self._ls_json("GET", f"/v1/payment_intents/{payment_intent}", INTERNAL_KEY)  # 404 if unknown
            self._created[payment_intent] = created
        return {"id": payment_intent, "created": created}

    def _configure(self, changes: Any) -> Reply:
        fields = {"webhook_url": "url", "webhook_secret": "secret", "delivery": "delivery"}
        if not isinstance(changes, dict) or not set(changes) <= set(fields):
            return json_reply(400, {"error": f"expected a JSON object with keys among {sorted(fields)}"})
        if "delivery" in changes and changes["delivery"] not in DELIVERY_MODES:
            return json_reply(400, {"error": f"delivery must be one of {DELIVERY_MODES}"})
        url = changes.get("webhook_url")
        if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
            return json_reply(400, {"error": "webhook_url must be an http(s) URL or null"})
        with self._lock:
            self._config = dataclasses.replace(self._config, **{fields[k]: v for k, v in changes.items()})
            config = dataclasses.replace(self._config)
        self.register()  # cheap, and repairs a localstripe that restarted (it forgets webhooks)
        return json_reply(
            200, {"webhook_url": config.url, "webhook_secret": config.secret, "delivery": config.delivery}
        )


def serve(*, host: str, port: int, localstripe_url: str, webhook: WebhookConfig) -> None:
    """Run the peer until interrupted. The session URLs it hands out use ``host`` and the port."""
    server = PeerServer(host, port, logger=log)
    peer = Peer(base_url=server.base_url, localstripe_url=localstripe_url, webhook=webhook)
    server.peer = peer
    try:
        peer.register()
    except requests.RequestException as e:  # localstripe may still be starting; /_peer/health retries
        log.info("localstripe not reachable yet (%s); will register on the first health check", e)
    log.info("stripe peer on %s, localstripe at %s", peer.base_url, peer.localstripe_url)
    with server:  # closes the socket however serving ends
        server.serve_forever()
