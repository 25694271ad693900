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

A logged-in customer's pages (:func:`invoice_list`, :func:`invoice_detail`) read through
the portal selectors, and their "Pay now" (:func:`invoice_pay`) starts through the same
:func:`_payment_begin` as the pay link's form.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from gateways.bank_transfer.instructions import bank_transfer_instructions
from gateways.base import GatewayPaymentStatus, GatewayRequestError, GatewayUnavailableError
from gateways.registry import gateway_for, gateways_enabled
from gateways.selectors import payment_attempt_for_return, payments_for_invoice, refunds_for_invoice
from gateways.services import payment_attempt_confirm, payment_attempt_start
from gateways.services.ledger import PaymentInvoiceMismatchError
from invoices.errors import InvoiceChecksumMismatchError, InvoiceNotFoundError, PayLinkError
from invoices.models import Invoice, InvoiceStatus
from invoices.pay_links import PayLinkClaims, pay_link_verify
from invoices.selectors import (
    credit_notes_for_invoice,
    invoice_get_for_pay_link,
    invoice_get_for_portal,
    invoice_get_for_portal_payment,
    invoice_may_pay,
    invoices_for_portal,
)
from invoices.services import invoice_checksum_verify
from paymenter import rls
from paymenter.client_ip import client_ip
from paymenter.errors import PaymenterError
from paymenter.principals import CustomerPrincipal, SystemPrincipal

# Not a portal user: the holder of a verified link. No user, so nothing is granted beyond
# the one customer's rows that row-level security then allows.
PAY_LINK_USER_ID = 0
RETURN_PRINCIPAL = SystemPrincipal(label="portal:payment_return")
SESSION_PAY_LINKS = "pay_links"  # attempt id -> the page (pay link or portal) it was started from
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

    def select() -> Invoice:
        return invoice_get_for_pay_link(invoice_id=claims.invoice_id, customer_id=claims.customer_id)

    def refused(exc: PaymenterError) -> HttpResponse:
        with rls.acting_as(principal):
            try:
                invoice = select()
            except InvoiceNotFoundError:
                return _refused(request, 404)
            return _invoice_page(
                request, invoice, list(invoice.lines.all()), token=token, status=exc.status_code, notice=exc.message
            )

    return _payment_begin(
        request,
        principal=principal,
        select=select,
        gateway=gateway,
        back_path=reverse("portal:hosted-invoice", kwargs={"token": token}),
        refused=refused,
        missing=lambda: _refused(request, 404),
    )


def _return_urls(attempt_id: uuid.UUID) -> tuple[str, str]:
    base = settings.PUBLIC_BASE_URL
    return (
        base + reverse("portal:payment-return", kwargs={"attempt_id": attempt_id}),
        base + reverse("portal:payment-cancelled", kwargs={"attempt_id": attempt_id}),
    )


def _payment_begin(
    request: HttpRequest,
    *,
    principal: CustomerPrincipal,
    select: Callable[[], Invoice],
    gateway: str,
    back_path: str,
    refused: Callable[[PaymenterError], HttpResponse],
    missing: Callable[[], HttpResponse],
) -> HttpResponse:
    """The one way a browser starts paying, from the hosted page or the portal.

    ``select`` is the caller's selector (run as ``principal``): it decides that this
    principal may pay that invoice. Everything else comes from the stored row inside
    :func:`payment_attempt_start`, which reuses an open attempt (a double click starts one).
    ``back_path`` is remembered in the customer's session so the return and cancel pages
    can link back to where they started.
    """
    try:
        with rls.acting_as(principal):
            invoice = select()
        attempt = payment_attempt_start(
            principal=principal,
            invoice=invoice,
            gateway_code=gateway,
            return_urls=_return_urls,
            source_ip=client_ip(request),
        )
    except InvoiceChecksumMismatchError:
        return _unavailable(request)
    except InvoiceNotFoundError:
        return missing()
    except PaymenterError as exc:
        return refused(exc)
    links: dict[str, str] = request.session.get(SESSION_PAY_LINKS, {})
    links[str(attempt.id)] = back_path
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


# --- the customer portal: a logged-in customer's invoices ------------------------------------

PORTAL_PAGE_SIZE = 25
STATUS_CHOICES = [(value, label) for value, label in InvoiceStatus.choices if value != InvoiceStatus.DRAFT]


def _portal_principal(request: HttpRequest) -> CustomerPrincipal | None:
    """The logged-in customer user's principal (set by ``PrincipalMiddleware``); ``None``
    for staff, whose place is the admin."""
    principal = rls.current_principal()
    return principal if isinstance(principal, CustomerPrincipal) else None


def _portal_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Login required (to ``settings.LOGIN_URL``), customers only (staff go to the admin),
    never cached: every portal page is about one customer's money."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        principal = _portal_principal(request)
        if principal is None:
            return redirect("admin:index")
        return view(request, principal, *args, **kwargs)

    return never_cache(login_required(wrapped))


@never_cache
@require_safe
def home(request: HttpRequest) -> HttpResponse:
    """``/``: a visitor logs in first; a customer goes to their invoices, staff to the admin."""
    if not request.user.is_authenticated:
        return redirect_to_login(reverse("portal:invoice-list"))
    if _portal_principal(request) is None:
        return redirect("admin:index")
    return redirect("portal:invoice-list")


@_portal_view
@require_safe
def invoice_list(request: HttpRequest, principal: CustomerPrincipal) -> HttpResponse:
    """The invoices of every customer the user is granted on, newest first, 25 a page.

    ``?status=`` filters; an unknown value (or ``draft``) is ignored and the list is shown
    unfiltered, so a hand-edited query string can never reach drafts. Two queries (count,
    page) whatever the page's size.
    """
    status = request.GET.get("status", "")
    if status not in dict(STATUS_CHOICES):
        status = ""
    page = Paginator(invoices_for_portal(principal=principal, status=status), PORTAL_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    context = {"page": page, "invoices": list(page.object_list), "status": status, "status_choices": STATUS_CHOICES}
    return _private(render(request, "portal/invoice_list.html", context))


def _not_found(request: HttpRequest) -> HttpResponse:
    """Another customer's invoice, a draft and a missing id: one page, one status."""
    return _private(render(request, "portal/invoice_not_found.html", status=404))


def _detail_page(
    request: HttpRequest, principal: CustomerPrincipal, invoice: Invoice, *, status: int = 200, notice: str = ""
) -> HttpResponse:
    lines = list(invoice.lines.all())
    if not invoice_checksum_verify(principal=principal, invoice=invoice, attempted="portal_detail", lines=lines):
        return _unavailable(request)
    payable = invoice.status in PAYABLE and invoice.amount_due_minor > 0
    may_pay = payable and invoice_may_pay(principal=principal, invoice=invoice)
    context = {
        "invoice": invoice,
        "lines": lines,
        "seller": invoice.seller_details or {},
        "buyer": invoice.buyer_details or {},
        "payments": payments_for_invoice(invoice=invoice),
        "refunds": refunds_for_invoice(invoice=invoice),
        "credit_notes": credit_notes_for_invoice(invoice=invoice),
        "gateways": [code.value for code in gateways_enabled()] if may_pay else [],
        "bank_transfer": bank_transfer_instructions(invoice) if may_pay else None,
        "notice": notice,
        "seller_time_zone": settings.SELLER_TIME_ZONE,  # dates as on the invoice, not UTC
    }
    response = render(request, "portal/invoice_detail.html", context, status=status)
    if context["gateways"]:
        response._csp_update = {"form-action": checkout_origins()}  # type: ignore[attr-defined]
    return _private(response)


@_portal_view
@require_safe
def invoice_detail(request: HttpRequest, principal: CustomerPrincipal, invoice_id: uuid.UUID) -> HttpResponse:
    """One invoice: its body (seller, buyer, lines with GST, totals), what was paid and is
    due, its payments, refunds and credit notes, and "Pay now" while something is due.

    A tampered invoice (its checksum fails) answers 409 with the hosted page's "cannot be
    paid, contact the seller" page, showing nothing read from its row.
    """
    try:
        invoice = invoice_get_for_portal(principal=principal, invoice_id=invoice_id)
    except InvoiceNotFoundError:
        return _not_found(request)
    return _detail_page(request, principal, invoice)


@_portal_view
@require_POST
def invoice_pay(
    request: HttpRequest, principal: CustomerPrincipal, invoice_id: uuid.UUID, gateway: str
) -> HttpResponse:
    """Pay now from the portal: the hosted page's way (:func:`_payment_begin`), for an
    invoice the user may pay (``pay_customer_invoices``; otherwise the not-found page).
    Nothing the form sends but the gateway in the URL is used. A refusal shows the detail
    page with the reason and its status (nothing due 409, a gateway not enabled 404, a
    gateway that is down 503); nothing is charged."""

    def refused(exc: PaymenterError) -> HttpResponse:
        try:
            invoice = invoice_get_for_portal(principal=principal, invoice_id=invoice_id)
        except InvoiceNotFoundError:
            return _not_found(request)
        return _detail_page(request, principal, invoice, status=exc.status_code, notice=exc.message)

    return _payment_begin(
        request,
        principal=principal,
        select=lambda: invoice_get_for_portal_payment(principal=principal, invoice_id=invoice_id),
        gateway=gateway,
        back_path=reverse("portal:invoice-detail", kwargs={"invoice_id": invoice_id}),
        refused=refused,
        missing=lambda: _not_found(request),
    )
