"""The Stripe adapter: Checkout Sessions in payment mode, fetch-back, refunds, disputes,
early fraud warnings and the daily report.

Card data is entered only on Stripe's page (a full redirect; PCI DSS SAQ A). Every
session asks for 3-D Secure on every card (``request_three_d_secure = "any"``: the
security model requires it for all cards). Every POST carries our own idempotency key,
derived from the attempt (or customer) it is for, so a retry or a double-click returns
the same object instead of a second one.

Amounts: :class:`~paymenter.money.Money` minor units are exactly Stripe's "smallest
currency unit" for every currency we invoice in (JPY has none: 0 decimals on both sides);
currency codes are lower-case at Stripe.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone
from stripe import StripeClient

from gateways.base import (
    CardFacts,
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
from gateways.stripe.client import stripe_call
from gateways.stripe.webhooks import stripe_event_parse, stripe_webhook_verify
from paymenter.money import Money, MoneyError, UnknownCurrencyError, normalize_currency

REFUND_METADATA_KEY = "paymenter_refund_id"
"""The refund's metadata naming our ``Refund`` row; a refund without it was made elsewhere."""
PAGE_SIZE = 100
"""Stripe's largest page of a list."""

# Dispute.status -> ours (see dispute_status). A warning_* status is an inquiry: open until
# closed, and a closed warning (warning_closed) leaves the money with us.
_DISPUTE_STATUS: Mapping[str, GatewayDisputeStatus] = {
    "won": GatewayDisputeStatus.WON,
    "warning_closed": GatewayDisputeStatus.WON,
    "lost": GatewayDisputeStatus.LOST,
}
# Refund.status -> ours: pending and requires_action are not final yet.
_REFUND_STATUS: Mapping[str, GatewayRefundStatus] = {
    "succeeded": GatewayRefundStatus.SUCCEEDED,
    "failed": GatewayRefundStatus.FAILED,
    "canceled": GatewayRefundStatus.FAILED,
}

# PaymentIntent.status -> ours. requires_capture never happens: sessions capture automatically.
_INTENT_STATUS: Mapping[str, GatewayPaymentStatus] = {
    "succeeded": GatewayPaymentStatus.SUCCEEDED,
    "processing": GatewayPaymentStatus.PENDING,
    "requires_action": GatewayPaymentStatus.PENDING,
    "requires_confirmation": GatewayPaymentStatus.PENDING,
    "requires_capture": GatewayPaymentStatus.PENDING,
    "requires_payment_method": GatewayPaymentStatus.PENDING,
    "canceled": GatewayPaymentStatus.CANCELED,
}


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _id_of(value: object) -> str:
    """An id field that may come back expanded (a dict with ``id``) or as the id itself."""
    if isinstance(value, dict):
        return _text(value.get("id"))
    return _text(value)


def card_facts(charge: Mapping[str, Any] | None) -> CardFacts | None:
    """The card facts of a charge (``payment_method_details.card``), never card data."""
    details = (charge or {}).get("payment_method_details") or {}
    card = details.get("card") if isinstance(details, dict) else None
    if not isinstance(card, dict):
        return None
    checks: dict[str, Any] = card["checks"] if isinstance(card.get("checks"), dict) else {}
    secure: dict[str, Any] = card["three_d_secure"] if isinstance(card.get("three_d_secure"), dict) else {}
    return CardFacts(
        brand=_text(card.get("brand"))[:32],
        country=_text(card.get("country")).upper()[:2],
        cvc_check=_text(checks.get("cvc_check"))[:32],
        address_postal_code_check=_text(checks.get("address_postal_code_check"))[:32],
        address_line1_check=_text(checks.get("address_line1_check"))[:32],
        three_d_secure_result=_text(secure.get("result"))[:32],
    )


class StripeGateway:
    code = GatewayCode.STRIPE

    def checkout_origin(self) -> str:
        """checkout.stripe.com for Stripe's API; a local peer (``STRIPE_API_BASE``) serves its
        own checkout page; ``STRIPE_CHECKOUT_ORIGIN`` overrides both."""
        base = urlsplit(settings.STRIPE_API_BASE)
        derived = "https://checkout.stripe.com" if base.netloc == "api.stripe.com" else f"{base.scheme}://{base.netloc}"
        return str(settings.STRIPE_CHECKOUT_ORIGIN or derived)

    def _customer(self, request: PaymentRequest) -> str:
        if request.gateway_customer_id:
            return request.gateway_customer_id
        params: dict[str, Any] = {"metadata": {"paymenter_customer_id": str(request.customer_id)}}
        if request.customer_email:
            params["email"] = request.customer_email
        if request.customer_name:
            params["name"] = request.customer_name
        created = stripe_call(
            "customers.create",
            lambda client: client.v1.customers.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": f"paymenter-customer-{request.customer_id}"},
            ),
        )
        return _text(created.get("id"))

    def payment_start(self, request: PaymentRequest) -> PaymentStart:
        customer_id = self._customer(request)
        metadata = {
            "invoice_id": str(request.invoice_id),
            "invoice_number": request.invoice_number,
            "attempt_id": str(request.attempt_id),
        }
        expires_at = request.expires_at or timezone.now() + timedelta(seconds=int(settings.PAYMENT_SESSION_TTL_SECONDS))
        params: dict[str, Any] = {
            "mode": "payment",
            "customer": customer_id,
            "client_reference_id": str(request.invoice_id),
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
            "payment_method_types": ["card"],
            "payment_method_options": {"card": {"request_three_d_secure": "any"}},
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": request.amount.currency.lower(),
                        "unit_amount": request.amount.minor,
                        "product_data": {"name": request.description[:250]},
                    },
                }
            ],
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
            "expires_at": int(expires_at.timestamp()),
        }
        session = stripe_call(
            "checkout.sessions.create",
            lambda client: client.v1.checkout.sessions.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": request.idempotency_key},
            ),
        )
        url = _text(session.get("url"))
        session_id = _text(session.get("id"))
        if not url or not session_id:
            raise GatewayRequestError("stripe checkout.sessions.create: no session url")
        stripe_expiry = session.get("expires_at")
        return PaymentStart(
            session_id=session_id,
            redirect_url=url,
            gateway_customer_id=customer_id if customer_id != request.gateway_customer_id else "",
            expires_at=datetime.fromtimestamp(stripe_expiry, tz=UTC) if isinstance(stripe_expiry, int) else expires_at,
        )

    def webhook_verify(self, *, body: bytes, headers: Mapping[str, str]) -> GatewayEvent:
        return stripe_webhook_verify(body=body, headers=headers)

    def webhook_parse(self, body: bytes) -> GatewayEvent:
        return stripe_event_parse(body)

    def payment_fetch(self, *, session_id: str = "", transaction_id: str = "") -> GatewayPayment | None:
        """The PaymentIntent (with its latest charge) as Stripe reports it now.

        Given a session, the session is read first: it names the PaymentIntent and says
        whether it expired. The answer is Stripe's, never the webhook body's.
        """
        session: dict[str, Any] = {}
        if session_id:
            session = stripe_call(
                "checkout.sessions.retrieve",
                lambda client: client.v1.checkout.sessions.retrieve(session_id),
            )
            transaction_id = _id_of(session.get("payment_intent")) or transaction_id
            if not transaction_id:
                if session.get("status") == "expired":
                    return self._without_intent(session, GatewayPaymentStatus.CANCELED)
                return self._without_intent(session, GatewayPaymentStatus.PENDING)
        if not transaction_id:
            return None
        intent = stripe_call(
            "payment_intents.retrieve",
            lambda client: client.v1.payment_intents.retrieve(
                transaction_id,
                params={"expand": ["latest_charge"]},
            ),
        )
        return self._from_intent(
            intent, session_id=session_id, session_closed=session.get("status") in ("complete", "expired")
        )

    def _without_intent(self, session: Mapping[str, Any], status: GatewayPaymentStatus) -> GatewayPayment:
        metadata = session.get("metadata") or {}
        amount = session.get("amount_total")
        currency = _text(session.get("currency"))
        return GatewayPayment(
            gateway=self.code,
            transaction_id="",
            status=status,
            amount=Money(amount if isinstance(amount, int) else 0, normalize_currency(currency or "AUD")),
            method=PaymentMethod.CARD,
            session_id=_text(session.get("id")),
            invoice_id=_uuid(metadata.get("invoice_id")),
            attempt_id=_uuid(metadata.get("attempt_id")),
            gateway_status=f"session:{_text(session.get('status'))}",
            session_closed=session.get("status") in ("complete", "expired"),
        )

    def _from_intent(self, intent: Mapping[str, Any], *, session_id: str, session_closed: bool) -> GatewayPayment:
        raw_status = _text(intent.get("status"))
        status = _INTENT_STATUS.get(raw_status, GatewayPaymentStatus.PENDING)
        charge = intent.get("latest_charge") if isinstance(intent.get("latest_charge"), dict) else None
        last_error = intent.get("last_payment_error") or {}
        if status is GatewayPaymentStatus.PENDING and raw_status == "requires_payment_method" and last_error:
            status = GatewayPaymentStatus.FAILED  # a declined or unauthenticated try; the session stays payable
        received = intent.get("amount_received")
        asked = intent.get("amount")
        amount: int = asked if isinstance(asked, int) else 0
        if status is GatewayPaymentStatus.SUCCEEDED and isinstance(received, int):
            amount = received
        metadata = intent.get("metadata") or {}
        try:
            currency = normalize_currency(_text(intent.get("currency")))
        except UnknownCurrencyError:
            raise GatewayRequestError(
                f"stripe payment in an unsupported currency: {intent.get('currency')!r}"
            ) from None
        return GatewayPayment(
            gateway=self.code,
            transaction_id=_text(intent.get("id")),
            status=status,
            amount=Money(amount, currency),
            method=PaymentMethod.CARD,
            session_id=session_id,
            invoice_id=_uuid(metadata.get("invoice_id")),
            attempt_id=_uuid(metadata.get("attempt_id")),
            card=card_facts(charge),
            failure_reason=_text(last_error.get("code") if isinstance(last_error, dict) else "")[:255],
            gateway_status=raw_status,
            session_closed=session_closed,
        )

    def session_expire(self, *, session_id: str) -> None:
        stripe_call(
            "checkout.sessions.expire",
            lambda client: client.v1.checkout.sessions.expire(
                session_id, options={"idempotency_key": f"paymenter-expire-{session_id}"}
            ),
        )

    def refund(
        self, *, transaction_id: str, amount: Money, idempotency_key: str, request_id: uuid.UUID
    ) -> GatewayRefund:
        """Refund ``amount`` of the PaymentIntent ``transaction_id``. Stripe refuses more than
        is left unrefunded (``amount_too_large``, ``charge_already_refunded``): a
        :class:`GatewayRequestError`. The same ``idempotency_key`` returns the same refund."""
        refund = stripe_call(
            "refunds.create",
            lambda client: client.v1.refunds.create(
                params={
                    "payment_intent": transaction_id,
                    "amount": amount.minor,
                    "metadata": {REFUND_METADATA_KEY: str(request_id)},
                },
                options={"idempotency_key": idempotency_key},
            ),
        )
        return self._refund(refund, transaction_id=transaction_id)

    def _refund(self, refund: Mapping[str, Any], *, transaction_id: str = "") -> GatewayRefund:
        raw_status = _text(refund.get("status"))
        metadata = refund.get("metadata")
        return GatewayRefund(
            gateway=self.code,
            refund_id=_text(refund.get("id")),
            transaction_id=_id_of(refund.get("payment_intent")) or transaction_id,
            status=_REFUND_STATUS.get(raw_status, GatewayRefundStatus.PENDING),
            amount=_money(refund, "refund"),
            request_id=_uuid(metadata.get(REFUND_METADATA_KEY)) if isinstance(metadata, dict) else None,
            gateway_status=raw_status[:64],
            created_at=_timestamp(refund.get("created")),
        )

    def payment_capture(self, *, session_id: str, idempotency_key: str) -> GatewayPayment:
        raise GatewayRequestError("stripe: Checkout sessions capture on Stripe's page; nothing to capture")

    def refunds_fetch(
        self, *, transaction_id: str = "", refund_id: str = "", page_size: int = PAGE_SIZE
    ) -> list[GatewayRefund]:
        """The refund ``refund_id``, or every refund of the PaymentIntent ``transaction_id``
        (made through us or in Stripe's dashboard: ``request_id`` tells them apart)."""
        if refund_id:
            refund = stripe_call("refunds.retrieve", lambda client: client.v1.refunds.retrieve(refund_id))
            return [self._refund(refund, transaction_id=transaction_id)]
        if not transaction_id:
            return []
        listed = _list_all(
            "refunds.list",
            lambda client, params: client.v1.refunds.list(params=params),  # type: ignore[arg-type]
            {"payment_intent": transaction_id},
            page_size=page_size,
        )
        return [self._refund(item, transaction_id=transaction_id) for item in listed]

    def disputes_fetch(
        self, *, transaction_id: str = "", dispute_id: str = "", page_size: int = PAGE_SIZE
    ) -> list[GatewayDispute]:
        """The dispute ``dispute_id``, or every dispute of the PaymentIntent ``transaction_id``."""
        if dispute_id:
            found = [stripe_call("disputes.retrieve", lambda client: client.v1.disputes.retrieve(dispute_id))]
        elif transaction_id:
            found = _list_all(
                "disputes.list",
                lambda client, params: client.v1.disputes.list(params=params),  # type: ignore[arg-type]
                {"payment_intent": transaction_id},
                page_size=page_size,
            )
        else:
            return []
        return [self._dispute(item, transaction_id=transaction_id) for item in found]

    def _dispute(self, dispute: Mapping[str, Any], *, transaction_id: str = "") -> GatewayDispute:
        raw_status = _text(dispute.get("status"))
        details = dispute.get("evidence_details")
        return GatewayDispute(
            gateway=self.code,
            dispute_id=_text(dispute.get("id")),
            transaction_id=_id_of(dispute.get("payment_intent")) or transaction_id,
            status=dispute_status(dispute),
            amount=_money(dispute, "dispute"),
            reason=_text(dispute.get("reason"))[:255],
            gateway_status=raw_status[:64],
            evidence_due_by=_timestamp(details.get("due_by")) if isinstance(details, dict) else None,
        )

    def fraud_warning_fetch(self, *, warning_id: str) -> GatewayFraudWarning | None:
        warning = stripe_call(
            "radar.early_fraud_warnings.retrieve",
            lambda client: client.v1.radar.early_fraud_warnings.retrieve(warning_id),
        )
        return GatewayFraudWarning(
            gateway=self.code,
            warning_id=_text(warning.get("id")),
            transaction_id=_id_of(warning.get("payment_intent")),
            fraud_type=_text(warning.get("fraud_type"))[:64],
            actionable=warning.get("actionable") is True,
            created_at=_timestamp(warning.get("created")),
        )

    def payments_report(
        self, *, since: datetime, until: datetime, page_size: int = PAGE_SIZE
    ) -> list[GatewayPayment] | None:
        """The PaymentIntents created in ``[since, until)`` that succeeded, newest first.

        Stripe filters PaymentIntents by creation time only: one created just before
        ``since`` and paid after it is in the previous day's report. Checkout creates the
        PaymentIntent when the customer pays, so the two differ by seconds.
        """
        listed = _list_all(
            "payment_intents.list",
            lambda client, params: client.v1.payment_intents.list(params=params),  # type: ignore[arg-type]
            {"created": {"gte": int(since.timestamp()), "lt": int(until.timestamp())}},
            page_size=page_size,
        )
        return [
            self._from_intent(item, session_id="", session_closed=True)
            for item in listed
            if item.get("status") == "succeeded"
        ]


def _money(obj: Mapping[str, Any], what: str) -> Money:
    """A refund's or dispute's ``amount`` and ``currency``: Stripe's always carry both, in a
    currency we invoice in; anything else is refused rather than guessed."""
    amount, currency = obj.get("amount"), obj.get("currency")
    try:
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise GatewayRequestError(f"stripe {what} {obj.get('id')!r} has no valid amount: {amount!r}")
        return Money(amount, normalize_currency(currency))
    except MoneyError:
        raise GatewayRequestError(f"stripe {what} in an unsupported currency or amount: {currency!r}") from None


def _timestamp(value: object) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return datetime.fromtimestamp(value, tz=UTC)


def dispute_status(dispute: Mapping[str, Any]) -> GatewayDisputeStatus:
    """Stripe's dispute status as ours: every status not decided is open (``needs_response``,
    ``under_review``, the ``warning_*`` inquiries, the ``appeal_*`` of a lost dispute).

    ``prevented`` (2025-08-27.basil) is decided by the network before it becomes a chargeback:
    a ``block`` keeps the money with us, a ``resolution`` (Visa RDR) gives it back.
    """
    raw_status = _text(dispute.get("status"))
    if raw_status == "prevented":
        details = dispute.get("payment_method_details")
        card = details.get("card") if isinstance(details, dict) else None
        case_type = card.get("case_type") if isinstance(card, dict) else None
        return GatewayDisputeStatus.WON if case_type == "block" else GatewayDisputeStatus.LOST
    return _DISPUTE_STATUS.get(raw_status, GatewayDisputeStatus.OPEN)


def _list_all(
    operation: str,
    list_page: Callable[[StripeClient, dict[str, Any]], Any],
    params: Mapping[str, Any],
    *,
    page_size: int,
) -> list[dict[str, Any]]:
    """Every item of a Stripe list, page by page (``starting_after`` the last id seen)."""
    items: list[dict[str, Any]] = []
    query: dict[str, Any] = {**params, "limit": page_size}
    while True:
        page = stripe_call(operation, lambda client: list_page(client, dict(query)))
        found = [item for item in page.get("data") or [] if isinstance(item, dict)]
        items.extend(found)
        last_id = _text(found[-1].get("id")) if found else ""
        if not page.get("has_more") or not last_id:
            return items
        query["starting_after"] = last_id
