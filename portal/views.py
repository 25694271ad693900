"""Customer-facing invoice pages (server-rendered; the portal will add more)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from invoices.errors import InvoiceNotFoundError, PayLinkError
from invoices.pay_links import pay_link_verify
from invoices.selectors import invoice_get_for_pay_link
from invoices.services import invoice_checksum_verify
from paymenter import rls
from paymenter.principals import CustomerPrincipal

# Not a portal user: the holder of a verified link. No user, so nothing is granted beyond
# the one customer's rows that row-level security then allows.
PAY_LINK_USER_ID = 0


def _private(response: HttpResponse) -> HttpResponse:
    """The token in the URL is a credential: keep the page out of indexes and Referer headers."""
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"
    return response


def _refused(request: HttpRequest, status: int) -> HttpResponse:
    return _private(render(request, "portal/pay_link_invalid.html", {"status": status}, status=status))


@never_cache
@require_safe
def hosted_invoice(request: HttpRequest, token: str) -> HttpResponse:
    """The hosted payment page a pay link opens; read-only until the portal takes payments.

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
    principal = CustomerPrincipal(user_id=PAY_LINK_USER_ID, customer_ids=frozenset({claims.customer_id}))
    with rls.acting_as(principal):
        try:
            invoice = invoice_get_for_pay_link(invoice_id=claims.invoice_id, customer_id=claims.customer_id)
        except InvoiceNotFoundError:
            return _refused(request, 404)
        lines = list(invoice.lines.all())
        if not invoice_checksum_verify(principal=principal, invoice=invoice, attempted="hosted_page", lines=lines):
            unavailable = {"seller_name": settings.SELLER_NAME}
            return _private(render(request, "portal/invoice_unavailable.html", unavailable, status=409))
        context = {
            "invoice": invoice,
            "lines": lines,
            "seller": invoice.seller_details or {},
            "buyer": invoice.buyer_details or {},
        }
        return _private(render(request, "portal/hosted_invoice.html", context))
