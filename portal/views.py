"""Customer-facing invoice pages: the hosted page of a pay link, and paying from it.

Paying (docs/payments.md):

1. the hosted page offers "Pay by card" (a POST form, CSRF-protected) when the invoice is
   intact and something is due;
2. :func:`payment_start` starts (or reuses) the attempt from the stored invoice and
   redirects the browser to the gateway's page (full redirect: card data is entered only
   there);
3. the gateway sends the customer back to :func:`payment_return`, which asks the gateway
   server-to-server and settles through the ledger before it shows anything: a customer
   who returns before the webhook sees the truth, and "paid" is never shown on the
   browser's word. :func:`payment_cancelled` says that nothing was charged.

The return pages are addressed by the attempt id (an unguessable UUID), not the pay-link
token, so the token is never handed to a gateway; the way back to the invoice page comes
from the customer's own session.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from gateways.bank_transfer.instructions import bank_transfer_instructions
from gateways.base import GatewayPaymentStatus, GatewayRequestError, GatewayUnavailableError
from gateways.registry import gateway_for, gateways_enabled
from gateways.selectors import payment_attempt_for_return
from gateways.services import payment_attempt_confirm, payment_attempt_start
from gateways.services.ledger import PaymentInvoiceMismatchError
from invoices.errors import InvoiceChecksumMismatchError, InvoiceNotFoundError, PayLinkError
from invoices.models import Invoice, InvoiceStatus
from invoices.pay_links import PayLinkClaims, pay_link_verify
from invoices.selectors import invoice_get_for_pay_link
from invoices.services import invoice_checksum_verify
from paymenter import rls
from paymenter.client_ip import client_ip
from paymenter.errors import PaymenterError
from paymenter.principals import CustomerPrincipal, SystemPrincipal

# Not a portal user: the holder of a verified link. No user, so nothing is granted beyond
# the one customer's rows that row-level security then allows.
PAY_LINK_USER_ID = 0
RETURN_PRINCIPAL = SystemPrincipal(label="portal:payment_return")
SESSION_PAY_LINKS = "pay_links"  # attempt id -> the pay-link path it was started from
PAYABLE = (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE)


def _private(response: HttpResponse) -> HttpResponse:
    """The token in the URL is a credential: keep the page out of indexes, and its URL out of
    the Referer header of anything but our own site (``same-origin``: the gateway's page, or a
    link the customer follows, never sees it). Not ``no-referrer``: under it a browser sends
    ``Origin: null`` with the Pay form, which Django's CSRF check rightly refuses."""
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "same-origin"
    return response


def _refused(request: HttpRequest, status: int) -> HttpResponse:
    return _private(render(request, "portal/pay_link_invalid.html", {"status": status}, status=status))


def checkout_origins() -> list[str]:
    """Where a Pay form may lead: the enabled gateways' pages (CSP ``form-action`` applies to
    the redirect after a form POST too)."""
    return [origin for code in gateways_enabled() if (origin := gateway_for(code).checkout_origin())]


def _pay_link_principal(claims: PayLinkClaims) -> CustomerPrincipal:
    return CustomerPrincipal(user_id=PAY_LINK_USER_ID, customer_ids=frozenset({claims.customer_id}))


def _invoice_page(
    request: HttpRequest, invoice: Invoice, lines: list[Any], *, token: str, status: int = 200, notice: str = ""
) -> HttpResponse:
    payable = invoice.status in PAYABLE and invoice.amount_due_minor > 0
    context = {
        "invoice": invoice,
        "lines": lines,
        "seller": invoice.seller_details or {},
        "buyer": invoice.buyer_details or {},
        "gateways": [code.value for code in gateways_enabled()] if payable else [],
        "bank_transfer": bank_transfer_instructions(invoice) if payable else None,
        "token": token,
        "notice": notice,
    }
    response = render(request, "portal/hosted_invoice.html", context, status=status)
    if context["gateways"]:
        response._csp_update = {"form-action": checkout_origins()}  # type: ignore[attr-defined]
    return _private(response)


def _unavailable(request: HttpRequest) -> HttpResponse:
    unavailable = {"seller_name": settings.SELLER_NAME}
    return _private(render(request, "portal/invoice_unavailable.html", unavailable, status=409))


@never_cache
@require_safe
def hosted_invoice(request: HttpRequest, token: str) -> HttpResponse:
    """The hosted payment page a pay link opens.

    Answers 400 (tampered), 410 (expired) or 404 (no longer that customer's invoice) with
    the same page, which names neither the invoice nor the reason beyond "invalid or expired".

    An invoice that fails its checksum (altered outside Paymenter) answers 409 with a page
    that says it cannot be paid and to contact the seller, and shows nothing read from the
    invoice's row: its amounts, lines, number and details are exactly what cannot be
    trusted. The seller is named from settings. The first detection is recorded and alerted.
    """
    try:
        claims = pay_link_verify(token)
    except PayLinkError as exc:
        return _refused(request, exc.status_code)
    principal = _pay_link_principal(claims)
    with rls.acting_as(principal):
        try:
            invoice = invoice_get_for_pay_link(invoice_id=claims.invoice_id, customer_id=claims.customer_id)
        except InvoiceNotFoundError:
            return _refused(request, 404)
        lines = list(invoice.lines.all())
        if not invoice_checksum_verify(principal=principal, invoice=invoice, attempted="hosted_page", lines=lines):
            return _unavailable(request)
        return _invoice_page(request, invoice, lines, token=token)


@never_cache
@require_POST
def payment_start(request: HttpRequest, token: str, gateway: str) -> HttpResponse:
    """Start paying the pay link's invoice at ``gateway`` and send the browser there (303).

    The amount is the stored invoice's amount due; nothing the form sends but the choice of
    gateway is used. A refusal shows the invoice page again with the reason (or the
    "cannot be paid" page for a tampered invoice); nothing is charged.
    """
    try:
        claims = pay_link_verify(token)
    except PayLinkError as exc:
        return _refused(request, exc.status_code)
    principal = _pay_link_principal(claims)
    page_path = reverse("portal:hosted-invoice", kwargs={"token": token})

    def return_urls(attempt_id: uuid.UUID) -> tuple[str, str]:
        base = settings.PUBLIC_BASE_URL
        return (
            base + reverse("portal:payment-return", kwargs={"attempt_id": attempt_id}),
            base + reverse("portal:payment-cancelled", kwargs={"attempt_id": attempt_id}),
        )

    try:
        with rls.acting_as(principal):
            invoice = invoice_get_for_pay_link(invoice_id=claims.invoice_id, customer_id=claims.customer_id)
        attempt = payment_attempt_start(
            principal=principal,
            invoice=invoice,
            gateway_code=gateway,
            return_urls=return_urls,
            source_ip=client_ip(request),
        )
    except InvoiceChecksumMismatchError:
        return _unavailable(request)
    except InvoiceNotFoundError:
        return _refused(request, 404)
    except PaymenterError as exc:
        with rls.acting_as(principal):
            try:
                invoice = invoice_get_for_pay_link(invoice_id=claims.invoice_id, customer_id=claims.customer_id)
            except InvoiceNotFoundError:
                return _refused(request, 404)
            return _invoice_page(
                request, invoice, list(invoice.lines.all()), token=token, status=exc.status_code, notice=exc.message
            )
    links: dict[str, str] = request.session.get(SESSION_PAY_LINKS, {})
    links[str(attempt.id)] = page_path
    request.session[SESSION_PAY_LINKS] = dict(list(links.items())[-20:])  # bounded
    return _private(HttpResponseRedirect(attempt.redirect_url, status=303))


def _back_link(request: HttpRequest, attempt_id: uuid.UUID) -> str:
    links: dict[str, str] = request.session.get(SESSION_PAY_LINKS, {})
    return links.get(str(attempt_id), "")


@never_cache
@require_safe
def payment_return(request: HttpRequest, attempt_id: uuid.UUID) -> HttpResponse:
    """Where the gateway sends the customer after paying: confirmed server-to-server first.

    Shows "paid" only when the ledger says so after asking the gateway; "processing" while
    the gateway has not decided; "not confirmed yet" when the gateway cannot be asked.
    """
    attempt = payment_attempt_for_return(principal=RETURN_PRINCIPAL, attempt_id=attempt_id)
    if attempt is None:
        return _private(render(request, "portal/payment_unknown.html", status=404))
    confirmed = True
    try:
        payment_attempt_confirm(principal=RETURN_PRINCIPAL, attempt=attempt, recorded_by="return_page")
    except (GatewayUnavailableError, GatewayRequestError, PaymenterError, PaymentInvoiceMismatchError):
        # not asked, or the answer could not be recorded (a tampered invoice is recorded and
        # alerted by the ledger): the page says "not confirmed yet", never "paid"
        confirmed = False
    attempt = payment_attempt_for_return(principal=RETURN_PRINCIPAL, attempt_id=attempt_id)
    assert attempt is not None  # noqa: S101 - it was there a moment ago and attempts are never deleted
    invoice = attempt.invoice
    context = {
        "invoice_number": invoice.number,
        "invoice_paid": invoice.status == InvoiceStatus.PAID,
        "attempt_status": attempt.status,
        "amount_due": invoice.amount_due_minor,
        "currency": invoice.currency,
        "confirmed": confirmed,
        "back_link": _back_link(request, attempt.id),
        "failed": attempt.status == "failed" or bool(attempt.failure_reason and attempt.status == "open"),
        "processing": attempt.status == "open" and confirmed and not attempt.failure_reason,
        "pending_status": GatewayPaymentStatus.PENDING.value,
    }
    return _private(render(request, "portal/payment_return.html", context))


@never_cache
@require_safe
def payment_cancelled(request: HttpRequest, attempt_id: uuid.UUID) -> HttpResponse:
    """The customer left the gateway's page without paying: nothing was charged."""
    attempt = payment_attempt_for_return(principal=RETURN_PRINCIPAL, attempt_id=attempt_id)
    if attempt is None:
        return _private(render(request, "portal/payment_unknown.html", status=404))
    context = {"invoice_number": attempt.invoice.number, "back_link": _back_link(request, attempt.id)}
    return _private(render(request, "portal/payment_cancelled.html", context))
