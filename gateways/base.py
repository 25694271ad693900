"""The one interface every payment gateway speaks (Stripe now; PayPal and bank transfer next).

A gateway adapter is a small object satisfying :class:`Gateway`: it starts a payment for
an invoice (and says where to send the customer), verifies and parses a webhook delivery
into :class:`GatewayEvent` values, fetches a payment back from the gateway (the source of
truth the ledger trusts, never a webhook body or a browser), and refunds. Everything
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


@dataclass(frozen=True)
class RefundResult:
    refund_id: str
    status: str
    amount: Money


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

    def payment_start(self, request: PaymentRequest) -> PaymentStart:
        """Create the gateway's payment session for ``request`` (idempotent on its key)."""
        ...

    def webhook_verify(self, *, body: bytes, headers: Mapping[str, str]) -> GatewayEvent:
        """Verify a delivery's signature and timestamp and parse it, or raise
        :class:`WebhookRejectedError`. Never contacts the gateway."""
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

    def refund(self, *, transaction_id: str, amount: Money, idempotency_key: str) -> RefundResult:
        """Refund ``amount`` of a payment (the refunds issue builds on this)."""
        ...
