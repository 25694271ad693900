"""Signed, expiring links to an invoice's hosted payment page (``pay_url`` in the API).

A token is ``TimestampSigner(salt="paymenter.pay-link").sign_object({"i": invoice id,
"c": customer id})``: an HMAC (SHA-256) under ``SECRET_KEY`` (``SECRET_KEY_FALLBACKS``
still verify after a rotation) over the claims and the time of signing. Changing any part
of it breaks the signature, so a link names exactly one invoice of one customer. It is a
bearer credential: whoever holds it may see that invoice for ``PAY_LINK_MAX_AGE_DAYS``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.http import HttpRequest
from django.urls import reverse

from invoices.errors import InvoiceStateError, PayLinkExpiredError, PayLinkInvalidError
from invoices.models import Invoice, InvoiceStatus

SALT = "paymenter.pay-link"


@dataclass(frozen=True)
class PayLinkClaims:
    invoice_id: uuid.UUID
    customer_id: uuid.UUID


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=SALT)


def max_age() -> dt.timedelta:
    return dt.timedelta(days=settings.PAY_LINK_MAX_AGE_DAYS)


def pay_link_token(*, invoice: Invoice) -> str:
    """A fresh token for an issued invoice (drafts have no payment page)."""
    if invoice.status == InvoiceStatus.DRAFT:
        raise InvoiceStateError(status=invoice.status, action="sent as a payment link")
    return _signer().sign_object({"i": str(invoice.id), "c": str(invoice.customer_id)})


def pay_link_url(*, invoice: Invoice, request: HttpRequest | None = None) -> str:
    """The absolute link, always on ``PUBLIC_BASE_URL``.

    ``request`` is accepted for call sites that have one and deliberately ignored: the
    ``Host`` header is client-controlled, and a link that is e-mailed must not inherit it.
    """
    path = reverse("portal:hosted-invoice", kwargs={"token": pay_link_token(invoice=invoice)})
    return f"{settings.PUBLIC_BASE_URL}{path}"


def pay_link_verify(token: str) -> PayLinkClaims:
    """The claims of a genuine, unexpired token; otherwise ``PayLinkInvalidError`` (400)
    or ``PayLinkExpiredError`` (410)."""
    try:
        claims = _signer().unsign_object(token, max_age=max_age())
    except signing.SignatureExpired as exc:
        raise PayLinkExpiredError() from exc
    except signing.BadSignature as exc:
        raise PayLinkInvalidError() from exc
    if not isinstance(claims, dict) or set(claims) != {"i", "c"}:
        raise PayLinkInvalidError()
    try:
        return PayLinkClaims(invoice_id=uuid.UUID(str(claims["i"])), customer_id=uuid.UUID(str(claims["c"])))
    except ValueError as exc:
        raise PayLinkInvalidError() from exc
