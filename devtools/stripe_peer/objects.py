"""Stripe-shaped objects built from Stripe's official fixtures (tests/fixtures/stripe, MIT).

Starting from the fixture gives every field the real API has, so the app's SDK objects behave as
in production. The fixtures carry generated placeholder values (a Link wallet, huge shipping
costs, a discount), which would mislead the app; the ``*_NEUTRAL`` tables reset those.
"""

from __future__ import annotations

import copy
import functools
import json
import secrets
import string
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import stripe

from devtools.stripe_peer.cards import CardFacts

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "stripe" / "objects.json"
THREE_D_SECURE_MODES = ("any", "automatic", "challenge")
_ADDRESS = {"city": None, "country": None, "line1": None, "line2": None, "postal_code": None, "state": None}

SESSION_NEUTRAL: dict[str, Any] = {
    "after_expiration": None,
    "automatic_tax": {"enabled": False, "liability": None, "status": None, "provider": None},
    "collected_information": None,
    "consent_collection": None,
    "consent": None,
    "currency_conversion": None,
    "custom_text": {
        "after_submit": None,
        "shipping_address": None,
        "submit": None,
        "terms_of_service_acceptance": None,
    },
    "customer_details": None,
    "invoice_creation": None,
    "adaptive_pricing": {"enabled": False},
    "managed_payments": None,
    "payment_method_configuration_details": None,
    "shipping_address_collection": None,
    "shipping_cost": None,
    "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
}
PI_NEUTRAL: dict[str, Any] = {
    "automatic_payment_methods": None,
    "canceled_at": None,
    "last_payment_error": None,
    "managed_payments": None,
    "next_action": None,
    "payment_method_configuration_details": None,
    "processing": None,
    "shipping": None,
    "transfer_data": None,
}
CHARGE_NEUTRAL: dict[str, Any] = {
    "billing_details": {"address": _ADDRESS, "email": None, "name": None, "phone": None, "tax_id": None},
    "description": None,
    "receipt_url": None,
    "shipping": None,
    "source": None,
    "transfer_data": None,
}


class StripeError(Exception):
    """An error in Stripe's JSON shape: ``{"error": {"type", "message", "param"?, "code"?}}``."""

    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None, kind: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"type": kind or "invalid_request_error", "message": message}
        if param:
            self.body["param"] = param
        if code:
            self.body["code"] = code


@functools.cache
def _fixtures() -> dict[str, dict[str, Any]]:
    with FIXTURES.open(encoding="utf-8") as f:
        loaded: dict[str, dict[str, Any]] = json.load(f)
    return loaded


def fixture(name: str, **overrides: Any) -> dict[str, Any]:
    obj = copy.deepcopy(_fixtures()[name])
    obj.update(copy.deepcopy(overrides))
    return obj


def random_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


def decode_form(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (``a[b][0][c]=v``, ``expand[]=x``) into nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        head, bracket, rest = key.partition("[")
        path = [head, *rest.rstrip("]").split("][")] if bracket else [head]
        node = root
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise StripeError(400, f"Invalid array or hash: {key}", param=head)
        node[path[-1] or str(len(node))] = value

    def listify(value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        items = {k: listify(v) for k, v in value.items()}
        if items and all(k.isdigit() for k in items):
            return [items[k] for k in sorted(items, key=int)]
        return items

    return {k: listify(v) for k, v in root.items()}


def expansions(params: Mapping[str, Any]) -> list[str]:
    raw = params.get("expand", [])
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(e, str) for e in raw):
        raise StripeError(400, "Invalid array", param="expand")
    return raw


def _int(value: Any, param: str, minimum: int) -> int:
    if not (isinstance(value, str) and value.isdigit()) or int(value) < minimum:
        raise StripeError(400, f"Invalid integer: {value!r} (at least {minimum})", param=param)
    return int(value)


def _str_map(value: Any, param: str) -> dict[str, str]:
    if value == "":  # `metadata=` clears metadata in Stripe's encoding
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise StripeError(400, "Invalid object", param=param)
    return dict(value)


def _url(value: Any, param: str) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise StripeError(400, "Not a valid URL", param=param)
    return value


def _only(value: Any, param: str, allowed: Iterable[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise StripeError(400, "Invalid object", param=param)
    for key in value:
        if key not in allowed:
            raise StripeError(400, f"Received unknown parameter: {param}[{key}]", param=f"{param}[{key}]")
    return value


SESSION_PARAMS = (
    "mode",
    "line_items",
    "customer",
    "customer_email",
    "client_reference_id",
    "metadata",
    "payment_intent_data",
    "payment_method_options",
    "payment_method_types",
    "success_url",
    "cancel_url",
    "expires_at",
    "expand",
    "locale",
    "submit_type",
    "billing_address_collection",
)


def _line_items(items: Any) -> tuple[str, list[str], int]:
    """The currency, product names and total of ``line_items[][price_data]`` (no Price objects)."""
    if not isinstance(items, list) or not items:
        raise StripeError(400, "line_items is required in payment mode", param="line_items")
    currencies, names, total = set(), [], 0
    for i, item in enumerate(items):
        param = f"line_items[{i}]"
        _only(item, param, ("price_data", "quantity"))
        price = _only(item.get("price_data"), f"{param}[price_data]", ("currency", "unit_amount", "product_data"))
        currency = price.get("currency")
        if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha()):
            raise StripeError(400, "Invalid currency", param=f"{param}[price_data][currency]")
        product = _only(price.get("product_data"), f"{param}[price_data][product_data]", ("name", "description"))
        if not isinstance(product.get("name"), str) or not product["name"]:
            raise StripeError(400, "Missing required param", param=f"{param}[price_data][product_data][name]")
        unit_amount = _int(price.get("unit_amount"), f"{param}[price_data][unit_amount]", 0)
        total += unit_amount * _int(item.get("quantity"), f"{param}[quantity]", 1)
        currencies.add(currency.lower())
        names.append(product["name"])
    if len(currencies) > 1:
        raise StripeError(400, "All line items must use the same currency", param="line_items")
    if total <= 0:
        raise StripeError(400, "The Checkout Session's total amount due must be greater than 0", param="line_items")
    return currencies.pop(), names, total


def new_session(
    params: dict[str, Any], *, base_url: str, customer_exists: Callable[[str], bool]
) -> tuple[dict[str, Any], str]:
    """Validate ``POST /v1/checkout/sessions`` as Stripe does; the session and its item's name."""
    for key in params:
        if key not in SESSION_PARAMS:
            raise StripeError(400, f"Received unknown parameter: {key}", param=key)
    if params.get("mode") != "payment":
        raise StripeError(400, "The test peer supports mode=payment only", param="mode")
    success_url = _url(params.get("success_url"), "success_url")
    cancel_url = _url(params["cancel_url"], "cancel_url") if "cancel_url" in params else None
    currency, names, total = _line_items(params.get("line_items"))
    customer = params.get("customer")
    if customer is not None and not (isinstance(customer, str) and customer_exists(customer)):
        raise StripeError(400, f"No such customer: '{customer}'", param="customer", code="resource_missing")
    email = params.get("customer_email")
    if email is not None and (customer is not None or not (isinstance(email, str) and "@" in email)):
        raise StripeError(400, "Invalid customer_email (or given with customer)", param="customer_email")
    reference = params.get("client_reference_id")
    if reference is not None and not (isinstance(reference, str) and len(reference) <= 200):
        raise StripeError(400, "Invalid client_reference_id", param="client_reference_id")
    pi_data = _only(params.get("payment_intent_data", {}), "payment_intent_data", ("metadata",))
    options = _only(params.get("payment_method_options", {}), "payment_method_options", ("card",))
    card_options = _only(options.get("card", {}), "payment_method_options[card]", ("request_three_d_secure",))
    if card_options.get("request_three_d_secure", "automatic") not in THREE_D_SECURE_MODES:
        raise StripeError(400, "Invalid request_three_d_secure", param="payment_method_options[card]")
    if params.get("payment_method_types", ["card"]) != ["card"]:
        raise StripeError(400, "The test peer supports card only", param="payment_method_types")
    now = int(time.time())
    expires_at = now + 24 * 3600
    if "expires_at" in params:
        expires_at = _int(params["expires_at"], "expires_at", 0)
        if not now + 30 * 60 <= expires_at <= now + 24 * 3600:
            raise StripeError(400, "expires_at must be 30 minutes to 24 hours from now", param="expires_at")
    session_id = random_id("cs_test_", 58)
    session = fixture(
        "checkout.session",
        **SESSION_NEUTRAL,
        id=session_id,
        object="checkout.session",
        created=now,
        expires_at=expires_at,
        status="open",
        payment_status="unpaid",
        amount_subtotal=total,
        amount_total=total,
        currency=currency,
        client_reference_id=reference,
        metadata=_str_map(params.get("metadata", {}), "metadata"),
        customer=customer,
        customer_email=email,
        payment_intent=None,
        url=f"{base_url}/checkout/{session_id}",
        success_url=success_url,
        cancel_url=cancel_url,
        mode="payment",
        livemode=False,
        locale=params.get("locale"),
        submit_type=params.get("submit_type"),
        billing_address_collection=params.get("billing_address_collection"),
        payment_method_options={"card": card_options} if card_options else {},
        payment_method_types=["card"],
    )
    # Kept by the peer, not in the object (Stripe keeps it in the session's line items).
    session["_payment_intent_metadata"] = _str_map(pi_data.get("metadata", {}), "payment_intent_data[metadata]")
    return session, ", ".join(names)


def public(session: dict[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in session.items() if not k.startswith("_")}


def completed_customer_details(session: dict[str, Any]) -> dict[str, Any]:
    details: dict[str, Any] = copy.deepcopy(_fixtures()["checkout.session"]["customer_details"])
    details.update(address=dict(_ADDRESS), email=session.get("customer_email"), tax_ids=[])
    return details


def payment_method_details(facts: CardFacts, amount: int, charge_id: str) -> dict[str, Any]:
    details: dict[str, Any] = copy.deepcopy(_fixtures()["charge"]["payment_method_details"])
    card = details["card"]
    checks = ("cvc_check", "address_postal_code_check", "address_line1_check")
    card.update(
        brand=facts.brand,
        network=facts.brand,
        country=facts.country,
        last4=facts.last4,
        exp_month=facts.exp_month,
        exp_year=facts.exp_year,
        fingerprint=facts.fingerprint,
        funding=facts.funding,
        amount_authorized=amount,
        wallet=None,
        installments=None,
        checks={name: getattr(facts, name) for name in checks},
        three_d_secure=None,
    )
    card["overcapture"]["maximum_amount_capturable"] = amount
    if facts.three_d_secure:
        card["three_d_secure"] = {
            "authentication_flow": "challenge",
            "electronic_commerce_indicator": "05" if facts.three_d_secure == "authenticated" else None,
            "exemption_indicator": None,
            "result": facts.three_d_secure,
            "result_reason": None,
            "transaction_id": str(uuid.uuid5(uuid.NAMESPACE_URL, charge_id)),  # stable across retrievals
            "version": "2.2.0",
        }
    return details


def charge(ls_charge: dict[str, Any], facts: CardFacts | None) -> dict[str, Any]:
    """localstripe's charge on top of the fixture, with the card details the peer knows."""
    out = fixture("charge", **CHARGE_NEUTRAL)
    out.update(ls_charge)
    succeeded = ls_charge.get("status") == "succeeded"
    out["amount_captured"] = out["amount"] if succeeded and ls_charge.get("captured") else 0
    decline = (facts.decline_code if facts else None) or "generic_decline"
    out["outcome"] = {
        "advice_code": None,
        "network_advice_code": None,
        "network_decline_code": None,
        "network_status": "approved_by_network" if succeeded else "declined_by_network",
        "reason": None if succeeded else decline,
        "risk_level": "normal",
        "risk_score": 20,
        "seller_message": "Payment complete." if succeeded else "The bank declined the payment.",
        "type": "authorized" if succeeded else "issuer_declined",
    }
    out["payment_method_details"] = payment_method_details(facts, out["amount"], out["id"]) if facts else None
    refunds = ls_charge.get("refunds")
    if isinstance(refunds, dict):  # localstripe's list holds its own refund shape
        shaped = [refund(r, payment_intent=ls_charge.get("payment_intent")) for r in refunds.get("data") or []]
        out["refunds"] = {**refunds, "data": shaped}
    return out


def payment_intent(
    ls_pi: dict[str, Any], *, charge_obj: dict[str, Any] | None, facts: CardFacts | None
) -> dict[str, Any]:
    """localstripe's PaymentIntent as Stripe shows it: ``latest_charge`` an id unless expanded."""
    out = fixture("payment_intent", **PI_NEUTRAL)
    out.update({k: v for k, v in ls_pi.items() if k != "charges"})  # `charges` left the API in 2022
    status, amount = out["status"], out["amount"]
    out["amount_received"] = amount if status == "succeeded" else 0
    out["amount_capturable"] = amount if status == "requires_capture" else 0
    latest = ls_pi.get("latest_charge")
    out["latest_charge"] = (
        charge_obj if charge_obj is not None else (latest["id"] if isinstance(latest, dict) else latest)
    )
    error = out.get("last_payment_error")
    if isinstance(error, dict):
        error = dict(error)
        if error.get("code") == "card_declined":
            error.setdefault("decline_code", (facts.decline_code if facts else None) or "generic_decline")
        error.setdefault("type", "card_error" if error.get("code") == "card_declined" else "invalid_request_error")
        out["last_payment_error"] = error
    return out


def event(kind: str, obj: dict[str, Any], *, event_id: str | None = None, created: int | None = None) -> dict[str, Any]:
    return fixture(
        "event",
        id=event_id or random_id("evt_"),
        object="event",
        type=kind,
        created=created or int(time.time()),
        data={"object": obj},
        livemode=False,
        api_version=stripe.api_version,
        pending_webhooks=1,
        request={"id": None, "idempotency_key": None},
    )


# -- refunds, disputes, early fraud warnings (https://docs.stripe.com/api) ------------------------

DISPUTE_REASONS = (
    "bank_cannot_process",
    "check_returned",
    "credit_not_processed",
    "customer_initiated",
    "debit_not_authorized",
    "duplicate",
    "fraudulent",
    "general",
    "incorrect_account_details",
    "insufficient_funds",
    "noncompliant",
    "product_not_received",
    "product_unacceptable",
    "subscription_canceled",
    "unrecognized",
)
DISPUTE_OUTCOMES = ("won", "lost")
FRAUD_TYPES = (
    "card_never_received",
    "fraudulent_card_application",
    "made_with_counterfeit_card",
    "made_with_lost_card",
    "made_with_stolen_card",
    "misc",
    "unauthorized_use_of_card",
)
EVIDENCE_DAYS = 21  # Stripe gives 7 to 21 days to answer a chargeback, depending on the network


def refund(ls_refund: dict[str, Any], *, payment_intent: str | None) -> dict[str, Any]:
    """localstripe's refund as Stripe shows it: Stripe's fields only, ``payment_intent`` set."""
    out = fixture("refund")
    out.update({k: v for k, v in ls_refund.items() if k in out})
    out["payment_intent"] = ls_refund.get("payment_intent") or payment_intent
    return out


REFUND_PARAMS = ("payment_intent", "charge", "amount", "metadata")


def refund_request(params: Mapping[str, Any]) -> tuple[str | None, str | None, dict[str, str]]:
    """Validate ``POST /v1/refunds``: the PaymentIntent or the charge, and the metadata."""
    for key in params:
        if key not in REFUND_PARAMS:
            raise StripeError(400, f"Received unknown parameter: {key}", param=key)
    payment_intent, charge_id = params.get("payment_intent"), params.get("charge")
    if (payment_intent is None) == (charge_id is None):
        raise StripeError(400, "You must pass exactly one of charge or payment_intent.")
    if not isinstance(payment_intent or charge_id, str):
        raise StripeError(400, "Invalid string", param="payment_intent" if payment_intent else "charge")
    return payment_intent, charge_id, _str_map(params.get("metadata", {}), "metadata")


def refund_amount(requested: Any, *, ls_charge: dict[str, Any]) -> int:
    """What to refund of ``ls_charge``: ``requested`` (by default all that is left), never
    more than is left, with Stripe's codes for the two refusals."""
    left = ls_charge["amount"] - ls_charge["amount_refunded"]
    if left <= 0:
        raise StripeError(400, f"Charge {ls_charge['id']} has already been refunded.", code="charge_already_refunded")
    if requested is None:
        return int(left)
    amount = _int(requested, "amount", 1)
    if amount > left:
        currency = ls_charge["currency"]
        raise StripeError(
            400,
            f"Refund amount ({amount} {currency}) is greater than unrefunded amount on charge ({left} {currency})",
            param="amount",
            code="amount_too_large",
        )
    return amount


def new_dispute(ls_charge: dict[str, Any], *, amount: int, reason: str) -> dict[str, Any]:
    """A chargeback on ``ls_charge``, waiting for our evidence (``needs_response``)."""
    now = int(time.time())
    dispute = fixture(
        "dispute",
        id=random_id("dp_"),
        amount=amount,
        charge=ls_charge["id"],
        payment_intent=ls_charge.get("payment_intent"),
        currency=ls_charge["currency"],
        created=now,
        reason=reason,
        status="needs_response",
        is_charge_refundable=False,
        livemode=False,
        enhanced_eligibility_types=[],
    )
    dispute["evidence_details"].update(due_by=now + EVIDENCE_DAYS * 86400, enhanced_eligibility={})
    dispute["payment_method_details"]["card"].update(case_type="chargeback")
    return dispute


def new_early_fraud_warning(ls_charge: dict[str, Any], *, fraud_type: str, actionable: bool) -> dict[str, Any]:
    return fixture(
        "radar.early_fraud_warning",
        id=random_id("issfr_"),
        charge=ls_charge["id"],
        payment_intent=ls_charge.get("payment_intent"),
        created=int(time.time()),
        fraud_type=fraud_type,
        actionable=actionable,
        livemode=False,
    )


def page(items: list[dict[str, Any]], params: Mapping[str, Any], url: str) -> dict[str, Any]:
    """One page of a list, newest first as given: ``limit`` (1-100, default 10) items after
    ``starting_after``, as Stripe pages."""
    limit = _int(params.get("limit", "10"), "limit", 1)
    if limit > 100:
        raise StripeError(400, "Invalid limit: must be at most 100", param="limit")
    start = 0
    after = params.get("starting_after")
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise StripeError(400, f"No such object: '{after}'", param="starting_after", code="resource_missing")
        start = ids.index(after) + 1
    return {
        "object": "list",
        "data": items[start : start + limit],
        "has_more": len(items) > start + limit,
        "url": url,
    }


def created_filter(value: Any) -> Callable[[int], bool]:
    """Stripe's ``created`` list filter: a timestamp, or any of ``gt``, ``gte``, ``lt``, ``lte``."""
    if isinstance(value, str):
        exact = _int(value, "created", 0)
        return lambda created: created == exact
    bounds = _only(value, "created", ("gt", "gte", "lt", "lte"))
    limits = {op: _int(v, f"created[{op}]", 0) for op, v in bounds.items()}
    checks = {
        "gt": lambda c, v: c > v,
        "gte": lambda c, v: c >= v,
        "lt": lambda c, v: c < v,
        "lte": lambda c, v: c <= v,
    }
    return lambda created: all(checks[op](created, v) for op, v in limits.items())
