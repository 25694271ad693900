"""The one interface every payment gateway speaks: Stripe, PayPal and bank transfer.

A gateway adapter is a small object satisfying :class:`Gateway`: it starts a payment for
an invoice (and says where to send the customer), verifies and parses a webhook delivery
into :class:`GatewayEvent` values, fetches payments, refunds and disputes back from the
gateway (the source of truth the ledger trusts, never a webhook body or a browser),
captures an approved payment (PayPal), refunds, and reports a day's payments for the
daily reconciliation summary. Everything
crossing the interface is a frozen dataclass of plain values, so the ledger never sees a
gateway SDK object, and amounts cross it only as :class:`~paymenter.money.Money`: the
conversion to a gateway's own format happens inside its adapter.

Adapters make HTTP calls; callers never hold a transaction or a row lock across one
(docs/payments.md, "No HTTP under a lock").
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from paymenter.money import Money


class GatewayCode(StrEnum):
    """The gateways a payment can come from; the value is stored on every ledger row."""

    STRIPE = "stripe"
    PAYPAL = "paypal"
    BANK_TRANSFER = "bank_transfer"


class PaymentMethod(StrEnum):
    CARD = "card"
    PAYPAL = "paypal"
    BANK_TRANSFER = "bank_transfer"


class GatewayPaymentStatus(StrEnum):
    """Where the gateway says a payment stands, normalized over every gateway."""

    PENDING = "pending"
    """Not decided yet: the customer has not finished, or the money is in flight."""
    SUCCEEDED = "succeeded"
    """The money was taken: the ledger records a payment."""
    FAILED = "failed"
    """The customer tried and the gateway refused (declined, failed authentication)."""
    CANCELED = "canceled"
    """The session expired or was cancelled; nothing was charged."""


class GatewayEventKind(StrEnum):
    """What a verified webhook event asks the ledger to look at."""

    PAYMENT = "payment"
    """A payment may have changed: fetch it back and settle its attempt."""
    REFUND = "refund"
    DISPUTE = "dispute"
    FRAUD_WARNING = "fraud_warning"
    """Stored for the refunds, disputes and fraud issues; no effect yet."""
    IGNORED = "ignored"
    """A type we do not act on: acknowledged and stored, nothing else."""


@dataclass(frozen=True)
class PaymentRequest:
    """What the gateway is asked to collect: always built from the stored, checksum-verified
    invoice by ``gateways.services`` (never from anything a browser sent)."""

    attempt_id: uuid.UUID
    invoice_id: uuid.UUID
    invoice_number: str
    customer_id: uuid.UUID
    amount: Money
    description: str
    success_url: str
    cancel_url: str
    idempotency_key: str
    expires_at: datetime | None = None
    """When the session must stop taking payment: fixed at the attempt's creation, so a
    retried request is identical to the first (idempotency keys require it)."""
    gateway_customer_id: str = ""
    """The gateway's id of our customer, when it has one (``GatewayCustomer``)."""
    customer_email: str = ""
    customer_name: str = ""


@dataclass(frozen=True)
class PaymentStart:
    """Where the customer goes next: the gateway's own page (``redirect_url``) or, for a
    bank transfer, the instructions to show."""

    session_id: str
    redirect_url: str = ""
    instructions: Mapping[str, str] = field(default_factory=dict)
    gateway_customer_id: str = ""
    """Set when the adapter created the gateway's customer on the way: the caller stores it."""
    expires_at: datetime | None = None


@dataclass(frozen=True)
class CardFacts:
    """What the gateway tells about the card, for the fraud rules: never a card number.

    Check results are the gateway's words (Stripe: ``pass``, ``fail``, ``unavailable``,
    ``unchecked``; empty when not reported).
    """

    brand: str = ""
    country: str = ""
    cvc_check: str = ""
    address_postal_code_check: str = ""
    address_line1_check: str = ""
    three_d_secure_result: str = ""
    """``authenticated``, ``attempt_acknowledged``, ``failed`` ... empty when 3-D Secure did not run."""


@dataclass(frozen=True)
class GatewayPayment:
    """A payment as the gateway reports it when asked (the fetch-back)."""

    gateway: GatewayCode
    transaction_id: str
    """The gateway's id of the money movement (Stripe: the PaymentIntent ``pi_...``)."""
    status: GatewayPaymentStatus
    amount: Money
    """What the gateway says it took (or will take): the ledger compares it with the invoice."""
    method: PaymentMethod
    session_id: str = ""
    invoice_id: uuid.UUID | None = None
    """The invoice the gateway's object names (our metadata); ``None`` when it names none."""
    attempt_id: uuid.UUID | None = None
    card: CardFacts | None = None
    failure_reason: str = ""
    gateway_status: str = ""
    """The gateway's own status word, for staff."""
    session_closed: bool = False
    """The session can take no further payment (completed or expired): a failure is final."""
    capturable: bool = False
    """The customer approved it but no money moved yet (PayPal: order ``APPROVED``):
    :meth:`Gateway.payment_capture` takes it, after the caller compared the amount."""
    payer_country: str = ""
    """The payer's country (ISO 3166-1 alpha-2) as the gateway knows it, for the fraud rules
    (PayPal: the payer's address); "" when unknown. Cards report theirs in ``card``."""


@dataclass(frozen=True)
class GatewayEvent:
    """One verified webhook event, normalized. The raw body is stored by the inbox."""

    gateway: GatewayCode
    event_id: str
    event_type: str
    kind: GatewayEventKind
    created_at: datetime | None = None
    """When the gateway says the event happened."""
    signed_at: datetime | None = None
    """The delivery's signature timestamp (set by ``webhook_verify``)."""
    object_id: str = ""
    """The id of the object the event is about (``cs_...``, ``pi_...``, ``ch_...``)."""
    session_id: str = ""
    transaction_id: str = ""
    """What to fetch back: the transaction when the event names it, else the session."""
    refund_id: str = ""
    """A refund event's refund, when it names one (else every refund of ``transaction_id``)."""
    dispute_id: str = ""
    """A dispute event's dispute, when it names one (else every dispute of ``transaction_id``)."""


class GatewayRefundStatus(StrEnum):
    PENDING = "pending"
    """Asked for, not final (Stripe ``pending``, PayPal ``PENDING``): counts as reserved."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    """Failed or cancelled at the gateway: the money never left; it frees the amount again."""


@dataclass(frozen=True)
class GatewayRefund:
    """A refund as the gateway reports it (the answer to ``refund`` and ``refunds_fetch``)."""

    gateway: GatewayCode
    refund_id: str
    """The gateway's id (Stripe ``re_...``, PayPal refund id, a bank payout's reference)."""
    transaction_id: str
    """The payment it gives money back from (the ``Payment.transaction_id``)."""
    status: GatewayRefundStatus
    amount: Money
    request_id: uuid.UUID | None = None
    """Our ``Refund`` row that asked for it (Stripe metadata ``paymenter_refund_id``, PayPal
    ``custom_id``); ``None`` for a refund made in the gateway's dashboard."""
    gateway_status: str = ""
    created_at: datetime | None = None


class GatewayDisputeStatus(StrEnum):
    OPEN = "open"
    """The customer disputes it and the gateway has not decided (funds usually withheld)."""
    WON = "won"
    """Decided for us: the money stays."""
    LOST = "lost"
    """Decided for the customer (or reversed by the gateway): the money is gone."""


@dataclass(frozen=True)
class GatewayDispute:
    """A dispute, chargeback or reversal of a payment, as the gateway reports it."""

    gateway: GatewayCode
    dispute_id: str
    transaction_id: str
    status: GatewayDisputeStatus
    amount: Money
    reason: str = ""
    gateway_status: str = ""
    evidence_due_by: datetime | None = None


@dataclass(frozen=True)
class GatewayFraudWarning:
    """An early fraud warning (Stripe Radar): the issuer reports the card used fraudulently."""

    gateway: GatewayCode
    warning_id: str
    transaction_id: str
    fraud_type: str
    actionable: bool
    created_at: datetime | None = None


class WebhookRejectedReason(StrEnum):
    """Why a delivery was refused (the 400's error code; counted per source address)."""

    SIGNATURE_MISSING = "webhook_signature_missing"
    SIGNATURE_INVALID = "webhook_signature_invalid"
    TIMESTAMP_STALE = "webhook_timestamp_stale"
    TIMESTAMP_FUTURE = "webhook_timestamp_future"
    BODY_TOO_LARGE = "webhook_body_too_large"
    BODY_MALFORMED = "webhook_body_malformed"
    SOURCE_NOT_ALLOWED = "webhook_source_not_allowed"
    GATEWAY_DISABLED = "webhook_gateway_disabled"
    WEBHOOK_ID_MISMATCH = "webhook_id_mismatch"
    """PayPal: the delivery is for another webhook subscription than ours."""
    CERTIFICATE_URL_REFUSED = "webhook_certificate_url_refused"
    """PayPal: the signing certificate's URL is not https on a paypal.com host (never fetched)."""
    CERTIFICATE_INVALID = "webhook_certificate_invalid"
    """PayPal: the certificate's chain, validity period or subject does not check out."""


class WebhookRejectedError(Exception):
    """A delivery that is not provably from the gateway, or not readable: nothing is stored."""

    def __init__(self, reason: WebhookRejectedReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class GatewayUnavailableError(Exception):
    """The gateway could not be reached or answered 5xx/429: transient, try again later."""


class GatewayRequestError(Exception):
    """The gateway refused our request (4xx): terminal for this request."""


class Gateway(Protocol):
    """A payment gateway adapter (one package per gateway: ``gateways/<code>/``)."""

    code: GatewayCode

    def checkout_origin(self) -> str:
        """The origin of the gateway's payment page, where the pay page's Pay form leads
        (its CSP ``form-action``); empty when the customer never leaves our site."""
        ...

    def payment_start(self, request: PaymentRequest) -> PaymentStart:
        """Create the gateway's payment session for ``request`` (idempotent on its key)."""
        ...

    def webhook_verify(self, *, body: bytes, headers: Mapping[str, str]) -> GatewayEvent:
        """Verify a delivery's signature and timestamp and parse it, or raise
        :class:`WebhookRejectedError`. Never asks the gateway about the event (PayPal's
        offline check may fetch a signing certificate, from ``paypal.com`` only, cached)."""
        ...

    def webhook_parse(self, body: bytes) -> GatewayEvent:
        """Parse a delivery the inbox stored after :meth:`webhook_verify` accepted it."""
        ...

    def payment_fetch(self, *, session_id: str = "", transaction_id: str = "") -> GatewayPayment | None:
        """The payment as the gateway reports it now; ``None`` when the session has no
        payment yet. Raises :class:`GatewayUnavailableError` when the gateway is down."""
        ...

    def session_expire(self, *, session_id: str) -> None:
        """Make an unused session unpayable (superseded attempts)."""
        ...

    def payment_capture(self, *, session_id: str, idempotency_key: str) -> GatewayPayment:
        """Take the money of an approved payment (``GatewayPayment.capturable``); idempotent
        on ``idempotency_key``. Gateways that capture on their own page refuse
        (:class:`GatewayRequestError`): callers only ask when ``capturable`` was reported."""
        ...

    def refund(
        self, *, transaction_id: str, amount: Money, idempotency_key: str, request_id: uuid.UUID
    ) -> GatewayRefund:
        """Refund ``amount`` of a payment; ``request_id`` (our ``Refund`` row) is stored at
        the gateway so a webhook about this refund is matched to it, and ``idempotency_key``
        makes a retried request return the same refund."""
        ...

    def refunds_fetch(self, *, transaction_id: str = "", refund_id: str = "") -> list[GatewayRefund]:
        """The refund ``refund_id``, or every refund of the payment ``transaction_id``."""
        ...

    def disputes_fetch(self, *, transaction_id: str = "", dispute_id: str = "") -> list[GatewayDispute]:
        """The dispute ``dispute_id``, or every dispute (and reversal) of ``transaction_id``."""
        ...

    def fraud_warning_fetch(self, *, warning_id: str) -> GatewayFraudWarning | None:
        """An early fraud warning; ``None`` where the gateway has no such thing."""
        ...

    def payments_report(self, *, since: datetime, until: datetime) -> list[GatewayPayment] | None:
        """The payments the gateway says succeeded in ``[since, until)`` (the daily summary);
        ``None`` when the gateway cannot report (bank transfer: the statement is the report)."""
        ...
