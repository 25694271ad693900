"""The PayPal adapter: Orders v2 with intent CAPTURE, server-side capture, refunds, disputes.

The customer approves an order on PayPal's page; no money moves until we capture it
(:meth:`PaypalGateway.payment_capture`), which the caller does only after comparing the
approved amount and currency with the attempt (``capturable``). Every write carries
``PayPal-Request-Id`` (our idempotency key), so a retry returns the first answer.

What ties an order to us: its one purchase unit's ``reference_id`` (the invoice id) and
``custom_id`` (the attempt id); a refund's ``custom_id`` is our ``Refund`` row. We do not
set the purchase unit's ``invoice_id``: PayPal refuses a second order with the same one,
and an invoice may take several attempts.

Amounts: :class:`~paymenter.money.Money` minor units become PayPal's decimal strings here
and nowhere else (``"12.34"`` AUD, ``"1234"`` JPY: PayPal refuses decimals for a
currency that has none), see :func:`money_to_paypal` and :func:`money_from_paypal`.

Limits of PayPal's API, and what this adapter does about them:

* ``refunds_fetch(transaction_id=...)`` alone returns ``[]``: PayPal has no "refunds of a
  capture" listing (its refund webhooks name each refund, and ``refund`` returns it);
* ``session_expire`` does nothing: an order that is not approved lapses at PayPal by itself,
  and an approved one moves money only when we capture it, which we never do for a
  superseded attempt;
* ``fraud_warning_fetch`` is ``None``: PayPal has no early fraud warnings;
* ``payments_report`` reads the Transaction Search API, which PayPal fills up to three
  hours late and answers for at most 31 days at a time.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from paypalserversdk.models.amount_with_breakdown import AmountWithBreakdown
from paypalserversdk.models.checkout_payment_intent import CheckoutPaymentIntent
from paypalserversdk.models.money import Money as PaypalMoney
from paypalserversdk.models.order_request import OrderRequest
from paypalserversdk.models.payment_source import PaymentSource
from paypalserversdk.models.paypal_experience_user_action import PaypalExperienceUserAction
from paypalserversdk.models.paypal_wallet import PaypalWallet
from paypalserversdk.models.paypal_wallet_context_shipping_preference import PaypalWalletContextShippingPreference
from paypalserversdk.models.paypal_wallet_experience_context import PaypalWalletExperienceContext
from paypalserversdk.models.purchase_unit_request import PurchaseUnitRequest
from paypalserversdk.models.refund_request import RefundRequest

from gateways.base import (
    GatewayCode,
    GatewayDispute,
    GatewayDisputeStatus,
    GatewayEvent,
    GatewayFraudWarning,
    GatewayPayment,
    GatewayPaymentStatus,
    GatewayRefund,
    GatewayRefundStatus,
    GatewayRequestError,
    PaymentMethod,
    PaymentRequest,
    PaymentStart,
)
from gateways.paypal.client import PaypalRequestError, paypal_call, paypal_request
from gateways.paypal.webhooks import linked_id, paypal_event_parse, paypal_id, paypal_webhook_verify
from paymenter.money import CURRENCY_EXPONENTS, Money, MoneyError, UnknownCurrencyError, normalize_currency

# Order.status -> ours, before any capture exists.
_ORDER_STATUS: Mapping[str, GatewayPaymentStatus] = {
    "CREATED": GatewayPaymentStatus.PENDING,
    "SAVED": GatewayPaymentStatus.PENDING,
    "PAYER_ACTION_REQUIRED": GatewayPaymentStatus.PENDING,
    "APPROVED": GatewayPaymentStatus.PENDING,  # capturable: the caller compares, then captures
    "VOIDED": GatewayPaymentStatus.CANCELED,
    "COMPLETED": GatewayPaymentStatus.PENDING,  # completed without a capture: nothing taken yet
}
# Capture.status -> ours. Money that moved and came back later (refunded, reversed) was
# still taken: refunds and the reversal (a lost dispute) are recorded on their own.
_CAPTURE_STATUS: Mapping[str, GatewayPaymentStatus] = {
    "COMPLETED": GatewayPaymentStatus.SUCCEEDED,
    "PARTIALLY_REFUNDED": GatewayPaymentStatus.SUCCEEDED,
    "REFUNDED": GatewayPaymentStatus.SUCCEEDED,
    "REVERSED": GatewayPaymentStatus.SUCCEEDED,
    "PENDING": GatewayPaymentStatus.PENDING,
    "DECLINED": GatewayPaymentStatus.FAILED,
    "FAILED": GatewayPaymentStatus.FAILED,
}
_REFUND_STATUS: Mapping[str, GatewayRefundStatus] = {
    "COMPLETED": GatewayRefundStatus.SUCCEEDED,
    "PENDING": GatewayRefundStatus.PENDING,
    "CANCELLED": GatewayRefundStatus.FAILED,
    "FAILED": GatewayRefundStatus.FAILED,
}
# A resolved dispute's outcome_code -> ours. ACCEPTED: we accepted the claim (the buyer was
# refunded); DENIED: PayPal denied the buyer's claim; RESOLVED_WITH_PAYOUT: PayPal paid the
# buyer from its own funds (seller protection), so the money stays with us. Any other outcome
# (NONE, a code PayPal adds later) stays OPEN: staff read gateway_status and decide.
_DISPUTE_OUTCOME: Mapping[str, GatewayDisputeStatus] = {
    "RESOLVED_BUYER_FAVOUR": GatewayDisputeStatus.LOST,
    "ACCEPTED": GatewayDisputeStatus.LOST,
    "RESOLVED_SELLER_FAVOUR": GatewayDisputeStatus.WON,
    "CANCELED_BY_BUYER": GatewayDisputeStatus.WON,
    "DENIED": GatewayDisputeStatus.WON,
    "RESOLVED_WITH_PAYOUT": GatewayDisputeStatus.WON,
}
REVERSAL_PREFIX = "reversal:"
"""A reversal has no dispute id at PayPal: ``reversal:<capture id>`` names it here."""
APPROVAL_LINKS = ("payer-action", "approve")
REPORT_PAGE_SIZE = 500
_PAYPAL_VALUE = re.compile(r"\d{1,16}(?:\.\d{1,6})?")
_PAYPAL_API_HOST = re.compile(r"(?:[a-z0-9-]+\.)*paypal\.com", re.IGNORECASE)


def money_to_paypal(amount: Money) -> dict[str, str]:
    """PayPal's ``{"currency_code", "value"}`` for ``amount``: exactly as many decimals as
    the currency has (none for JPY), never through a float."""
    exponent = CURRENCY_EXPONENTS[amount.currency]
    if amount.minor < 0:
        raise ValueError("PayPal amounts are never negative")
    if exponent == 0:
        value = str(amount.minor)
    else:
        whole, fraction = divmod(amount.minor, 10**exponent)
        value = f"{whole}.{fraction:0{exponent}d}"
    return {"currency_code": amount.currency, "value": value}


def money_from_paypal(amount: object) -> Money:
    """The :class:`Money` of a PayPal amount object; refuses what is not exact in minor units."""
    if not isinstance(amount, dict):
        raise GatewayRequestError("paypal: an amount is missing")
    try:
        currency = normalize_currency(amount.get("currency_code"))
    except UnknownCurrencyError:
        raise GatewayRequestError(f"paypal: unsupported currency {amount.get('currency_code')!r}") from None
    value = amount.get("value")
    if not isinstance(value, str) or not _PAYPAL_VALUE.fullmatch(value):
        raise GatewayRequestError(f"paypal: malformed amount {value!r}")
    try:
        return Money.parse(value, currency)  # exact: more decimals than the currency has is refused
    except MoneyError:
        raise GatewayRequestError(f"paypal: {value} {currency} is not a whole number of minor units") from None


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _time(value: object) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(_text(value))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else None


def _path_id(value: str, what: str) -> str:
    """An id we put in a URL path: PayPal's alphabet only (no path tricks from a webhook)."""
    checked = paypal_id(value.removeprefix(REVERSAL_PREFIX))
    if not checked:
        raise GatewayRequestError(f"paypal: malformed {what} id {value!r}")
    return checked


def _purchase_unit(order: Mapping[str, Any]) -> dict[str, Any]:
    units = order.get("purchase_units")
    return _dict(units[0]) if isinstance(units, list) and units else {}


def _captures(unit: Mapping[str, Any]) -> list[dict[str, Any]]:
    captures = _dict(unit.get("payments")).get("captures")
    return [item for item in captures if isinstance(item, dict)] if isinstance(captures, list) else []


def _search_transactions(client: Any, *, options: Mapping[str, Any]) -> Any:
    return client.transaction_search.search_transactions(dict(options))


class PaypalGateway:
    code = GatewayCode.PAYPAL

    def checkout_origin(self) -> str:
        """www.paypal.com (www.sandbox.paypal.com) for PayPal's API hosts; a local fake
        (``PAYPAL_API_BASE``) serves its own approval page; ``PAYPAL_CHECKOUT_ORIGIN``
        overrides both."""
        base = urlsplit(settings.PAYPAL_API_BASE)
        host = base.hostname or ""
        if _PAYPAL_API_HOST.fullmatch(host):
            derived = "https://www.sandbox.paypal.com" if ".sandbox." in f".{host}" else "https://www.paypal.com"
        else:
            derived = f"{base.scheme}://{base.netloc}"
        return str(settings.PAYPAL_CHECKOUT_ORIGIN or derived)

    def payment_start(self, request: PaymentRequest) -> PaymentStart:
        amount = money_to_paypal(request.amount)
        body = OrderRequest(
            intent=CheckoutPaymentIntent.CAPTURE,
            purchase_units=[
                PurchaseUnitRequest(
                    amount=AmountWithBreakdown(currency_code=amount["currency_code"], value=amount["value"]),
                    reference_id=str(request.invoice_id),
                    custom_id=str(request.attempt_id),
                    description=request.description[:127],
                )
            ],
            payment_source=PaymentSource(
                paypal=PaypalWallet(
                    experience_context=PaypalWalletExperienceContext(
                        return_url=request.success_url,
                        cancel_url=request.cancel_url,
                        shipping_preference=PaypalWalletContextShippingPreference.NO_SHIPPING,
                        user_action=PaypalExperienceUserAction.PAY_NOW,
                    )
                )
            ),
        )
        order = paypal_call(
            "orders.create",
            lambda client: client.orders.create_order(
                {"body": body, "paypal_request_id": request.idempotency_key, "prefer": "return=representation"}
            ),
        )
        order_id = paypal_id(order.get("id"))
        links = order.get("links")
        approval = {_text(_dict(link).get("rel")): _text(_dict(link).get("href")) for link in _list(links)}
        url = next((approval[rel] for rel in APPROVAL_LINKS if approval.get(rel)), "")
        if not order_id or not url:
            raise GatewayRequestError("paypal orders.create: no order id or approval link")
        return PaymentStart(session_id=order_id, redirect_url=url, expires_at=request.expires_at)

    def webhook_verify(self, *, body: bytes, headers: Mapping[str, str]) -> GatewayEvent:
        return paypal_webhook_verify(body=body, headers=headers)

    def webhook_parse(self, body: bytes) -> GatewayEvent:
        return paypal_event_parse(body)

    def _order(self, order_id: str) -> dict[str, Any]:
        order_id = _path_id(order_id, "order")
        return paypal_call("orders.get", lambda client: client.orders.get_order({"id": order_id}))

    def _capture(self, capture_id: str) -> dict[str, Any]:
        capture_id = _path_id(capture_id, "capture")
        return paypal_call(
            "captures.get", lambda client: client.payments.get_captured_payment({"capture_id": capture_id})
        )

    def payment_fetch(self, *, session_id: str = "", transaction_id: str = "") -> GatewayPayment | None:
        """The order (with its capture) as PayPal reports it now. Given only a capture, the
        capture names its order, which is read for the invoice and attempt it is for."""
        if session_id:
            return self._from_order(self._order(session_id), transaction_id=transaction_id)
        if not transaction_id:
            return None
        capture = self._capture(transaction_id)
        supplementary = _dict(_dict(capture.get("supplementary_data")).get("related_ids"))
        order_id = paypal_id(supplementary.get("order_id")) or linked_id(capture, rel="up", kind="checkout/orders")
        if order_id:
            return self._from_order(self._order(order_id), transaction_id=transaction_id)
        return self._from_capture(capture, order={}, unit={})

    def _from_order(self, order: Mapping[str, Any], *, transaction_id: str = "") -> GatewayPayment:
        unit = _purchase_unit(order)
        captures = _captures(unit)
        capture = next((item for item in captures if item.get("id") == transaction_id), None)
        if capture is None and captures:
            capture = captures[-1]  # the latest (an order with intent CAPTURE has one)
        if capture is not None:
            return self._from_capture(capture, order=order, unit=unit)
        raw_status = _text(order.get("status"))
        return GatewayPayment(
            gateway=self.code,
            transaction_id="",
            status=_ORDER_STATUS.get(raw_status, GatewayPaymentStatus.PENDING),
            amount=money_from_paypal(unit.get("amount")),
            method=PaymentMethod.PAYPAL,
            session_id=paypal_id(order.get("id")),
            invoice_id=_uuid(unit.get("reference_id")),
            attempt_id=_uuid(unit.get("custom_id")),
            gateway_status=f"order:{raw_status}"[:64],
            session_closed=raw_status in ("COMPLETED", "VOIDED"),
            capturable=raw_status == "APPROVED",
            payer_country=_payer_country(order),
        )

    def _from_capture(
        self, capture: Mapping[str, Any], *, order: Mapping[str, Any], unit: Mapping[str, Any]
    ) -> GatewayPayment:
        raw_status = _text(capture.get("status"))
        status = _CAPTURE_STATUS.get(raw_status, GatewayPaymentStatus.PENDING)
        details = _dict(capture.get("status_details"))
        return GatewayPayment(
            gateway=self.code,
            transaction_id=paypal_id(capture.get("id")),
            status=status,
            amount=money_from_paypal(capture.get("amount")),
            method=PaymentMethod.PAYPAL,
            session_id=paypal_id(order.get("id")),
            invoice_id=_uuid(unit.get("reference_id")),
            attempt_id=_uuid(unit.get("custom_id") or capture.get("custom_id")),
            failure_reason=_text(details.get("reason"))[:255] if status is not GatewayPaymentStatus.SUCCEEDED else "",
            gateway_status=raw_status[:64],
            session_closed=True,  # a captured order takes no further payment
            payer_country=_payer_country(order),
        )

    def session_expire(self, *, session_id: str) -> None:
        """Nothing to do: see the module docstring (an order moves money only when captured)."""

    def payment_capture(self, *, session_id: str, idempotency_key: str) -> GatewayPayment:
        """Capture the approved order, then report it as :meth:`payment_fetch` does. An order
        captured already (by an earlier try, another worker, the customer's return) is
        reported as it stands: capturing is idempotent here, not only on the request id."""
        order_id = _path_id(session_id, "order")
        try:
            paypal_call(
                "orders.capture",
                lambda client: client.orders.capture_order(
                    {"id": order_id, "paypal_request_id": idempotency_key, "prefer": "return=minimal"}
                ),
            )
        except PaypalRequestError as exc:
            if exc.issue != "ORDER_ALREADY_CAPTURED":
                raise
        return self._from_order(self._order(order_id))

    def refund(
        self, *, transaction_id: str, amount: Money, idempotency_key: str, request_id: uuid.UUID
    ) -> GatewayRefund:
        capture_id = _path_id(transaction_id, "capture")
        value = money_to_paypal(amount)
        body = RefundRequest(
            amount=PaypalMoney(currency_code=value["currency_code"], value=value["value"]),
            custom_id=str(request_id),
        )
        refund = paypal_call(
            "captures.refund",
            lambda client: client.payments.refund_captured_payment(
                {
                    "capture_id": capture_id,
                    "body": body,
                    "paypal_request_id": idempotency_key,
                    "prefer": "return=representation",
                }
            ),
        )
        return self._refund(refund, transaction_id=capture_id)

    def _refund(self, refund: Mapping[str, Any], *, transaction_id: str) -> GatewayRefund:
        raw_status = _text(refund.get("status"))
        return GatewayRefund(
            gateway=self.code,
            refund_id=paypal_id(refund.get("id")),
            transaction_id=linked_id(refund, rel="up", kind="payments/captures") or transaction_id,
            status=_REFUND_STATUS.get(raw_status, GatewayRefundStatus.PENDING),
            amount=money_from_paypal(refund.get("amount")),
            request_id=_uuid(refund.get("custom_id")),
            gateway_status=raw_status[:64],
            created_at=_time(refund.get("create_time")),
        )

    def refunds_fetch(self, *, transaction_id: str = "", refund_id: str = "") -> list[GatewayRefund]:
        """The refund ``refund_id``; ``[]`` for ``transaction_id`` alone (PayPal cannot list
        the refunds of a capture: each one arrives by webhook, with its id)."""
        if not refund_id:
            return []
        checked = _path_id(refund_id, "refund")
        refund = paypal_call("refunds.get", lambda client: client.payments.get_refund({"refund_id": checked}))
        return [self._refund(refund, transaction_id=transaction_id)]

    def disputes_fetch(self, *, transaction_id: str = "", dispute_id: str = "") -> list[GatewayDispute]:
        """The dispute ``dispute_id`` (``reversal:<capture>`` for a reversal), or every dispute
        of the capture ``transaction_id`` plus its reversal when PayPal reversed it."""
        if dispute_id.startswith(REVERSAL_PREFIX):
            return self._reversals(_path_id(dispute_id, "capture"))
        if dispute_id:
            return [self._dispute(self._dispute_get(dispute_id))]
        if not transaction_id:
            return []
        capture_id = _path_id(transaction_id, "capture")
        listed = paypal_request(
            "disputes.list",
            "GET",
            "/v1/customer/disputes",
            params={"disputed_transaction_id": capture_id, "page_size": "50"},
        )
        ids = [_text(_dict(item).get("dispute_id")) for item in _list(listed.get("items"))]
        found = [self._dispute(self._dispute_get(dispute_id)) for dispute_id in ids]
        return found + self._reversals(capture_id)

    def _dispute_get(self, dispute_id: str) -> dict[str, Any]:
        checked = _path_id(dispute_id, "dispute")
        return paypal_request("disputes.get", "GET", f"/v1/customer/disputes/{checked}")

    def _reversals(self, capture_id: str) -> list[GatewayDispute]:
        capture = self._capture(capture_id)
        if capture.get("status") != "REVERSED":
            return []
        return [
            GatewayDispute(
                gateway=self.code,
                dispute_id=f"{REVERSAL_PREFIX}{capture_id}",
                transaction_id=capture_id,
                status=GatewayDisputeStatus.LOST,
                amount=money_from_paypal(capture.get("amount")),
                reason="reversal",
                gateway_status="REVERSED",
            )
        ]

    def _dispute(self, dispute: Mapping[str, Any]) -> GatewayDispute:
        raw_status = _text(dispute.get("status"))
        outcome = _text(_dict(dispute.get("dispute_outcome")).get("outcome_code"))
        status = GatewayDisputeStatus.OPEN
        if raw_status == "RESOLVED":
            status = _DISPUTE_OUTCOME.get(outcome, GatewayDisputeStatus.OPEN)
        disputed = dispute.get("disputed_transactions")
        first = _dict(disputed[0]) if isinstance(disputed, list) and disputed else {}
        return GatewayDispute(
            gateway=self.code,
            dispute_id=paypal_id(dispute.get("dispute_id")),
            transaction_id=paypal_id(first.get("seller_transaction_id")),
            status=status,
            amount=money_from_paypal(dispute.get("dispute_amount")),
            reason=_text(dispute.get("reason"))[:255],
            gateway_status=(f"{raw_status}:{outcome}" if outcome else raw_status)[:64],
            evidence_due_by=_time(dispute.get("seller_response_due_date")),
        )

    def fraud_warning_fetch(self, *, warning_id: str) -> GatewayFraudWarning | None:
        return None

    def payments_report(self, *, since: datetime, until: datetime) -> list[GatewayPayment] | None:
        """Successful payments received in ``[since, until)`` (Transaction Search, paged;
        PayPal's range is inclusive at both ends, so the end is filtered here)."""
        reported: list[GatewayPayment] = []
        page = 1
        while True:
            options = {
                "start_date": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "end_date": until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "transaction_status": "S",
                "fields": "transaction_info",
                "page_size": REPORT_PAGE_SIZE,
                "page": page,
            }
            answer = paypal_call("transactions.search", functools.partial(_search_transactions, options=options))
            details = answer.get("transaction_details")
            for item in details if isinstance(details, list) else []:
                payment = self._reported(_dict(_dict(item).get("transaction_info")), since=since, until=until)
                if payment is not None:
                    reported.append(payment)
            total_pages = answer.get("total_pages")
            if not isinstance(total_pages, int) or page >= total_pages:
                return reported
            page += 1

    def _reported(self, info: Mapping[str, Any], *, since: datetime, until: datetime) -> GatewayPayment | None:
        """A payment received (event codes ``T00xx``, a positive amount) in the window."""
        at = _time(info.get("transaction_initiation_date"))
        amount = _dict(info.get("transaction_amount"))
        if (
            not _text(info.get("transaction_event_code")).startswith("T00")
            or _text(amount.get("value")).startswith("-")
            or at is None
            or not since <= at < until
        ):
            return None
        return GatewayPayment(
            gateway=self.code,
            transaction_id=paypal_id(info.get("transaction_id")),
            status=GatewayPaymentStatus.SUCCEEDED,
            amount=money_from_paypal(amount),
            method=PaymentMethod.PAYPAL,
            attempt_id=_uuid(info.get("custom_field")),
            gateway_status=_text(info.get("transaction_status"))[:64],
            session_closed=True,
        )


def _payer_country(order: Mapping[str, Any]) -> str:
    """The payer's country from the order (``payer.address.country_code``, else the PayPal
    wallet's ``payment_source.paypal.address``): for the fraud rules; "" when not given."""
    paypal_source = _dict(_dict(order.get("payment_source")).get("paypal"))
    for address in (_dict(_dict(order.get("payer")).get("address")), _dict(paypal_source.get("address"))):
        code = _text(address.get("country_code")).upper()
        if len(code) == 2 and code.isalpha():
            return code
    return ""
