"""PDF documents: the tax invoice, the receipt of a payment and the adjustment (credit) note.

Each PDF is WeasyPrint's rendering of a template in ``templates/documents/``; the tax invoice
includes ``documents/_invoice_body.html``, the same partial the portal's invoice page and the
hosted pay-link page show, so the page and the PDF cannot say different things. One print
stylesheet (``paymenter/static/documents/print.css``) styles them all.

No network: the HTML is ours, but an invoice's description is a customer-supplied string,
and a renderer that follows URLs is a server-side request forgery waiting for a template
mistake. :func:`local_static_fetcher` refuses every URL that is not a file in the documents'
static directory.

Views: a logged-in portal user downloads the documents of invoices their selector lets them
see (another customer's id is the same 404 as a missing one); the holder of a verified pay
link downloads that invoice's PDF. A document whose checksum fails (altered outside
Paymenter) is never rendered: 409 with the "cannot be trusted" page, as the hosted page.
"""

from __future__ import annotations

import functools
import mimetypes
import uuid
import zoneinfo
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from gateways.models import Payment, PaymentStatus
from gateways.selectors import payment_get_for_portal, payments_for_invoice
from invoices import credit_notes
from invoices.errors import InvoiceNotFoundError, PayLinkError
from invoices.models import CreditNote, CreditNoteLine, Invoice, InvoiceLine
from invoices.pay_links import pay_link_verify
from invoices.selectors import credit_note_get_for_portal, invoice_get_for_pay_link, invoice_get_for_portal
from invoices.services import invoice_checksum_verify
from paymenter import rls
from paymenter.principals import CustomerPrincipal

DOCUMENTS_STATIC_DIR = Path(settings.BASE_DIR) / "paymenter" / "static" / "documents"
METHOD_NAMES = {"card": "Card", "paypal": "PayPal", "bank_transfer": "Bank transfer"}
PAY_LINK_USER_ID = 0  # as portal.views: the holder of a verified link, not a user


class DocumentResourceRefusedError(ValueError):
    """A document asked for a URL outside the documents' static directory."""


def local_static_file(url: str, root: Path = DOCUMENTS_STATIC_DIR) -> Path:
    """The file ``url`` names if it is a ``file:`` URL of a file inside ``root``; anything
    else (http, https, data, ftp, another host, a file elsewhere, ``..`` out of the
    directory) raises :class:`DocumentResourceRefusedError`, before any I/O."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "file" or parts.netloc not in ("", "localhost"):
        raise DocumentResourceRefusedError(f"not a local static file: {parts.scheme}:")
    path = Path(url2pathname(parts.path)).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        raise DocumentResourceRefusedError(f"not a documents static file: {path.name}")
    return path


@functools.cache
def _fetcher_class() -> type[Any]:
    """WeasyPrint's URL fetcher for our documents, reading only what :func:`local_static_file`
    allows (WeasyPrint then renders without a refused resource and logs a warning).

    WeasyPrint is imported here, not at module level: it loads Pango when imported, and a
    machine without it should still run everything but the documents."""
    from weasyprint.urls import URLFetcher, URLFetcherResponse  # noqa: PLC0415 - see docstring

    class LocalStaticFetcher(URLFetcher):  # type: ignore[misc]  # WeasyPrint is untyped
        def __init__(self) -> None:
            super().__init__(allowed_protocols=("file",), allow_redirects=False)

        def fetch(self, url: str, headers: Any = None) -> Any:
            path = local_static_file(url)
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            return URLFetcherResponse(path.as_uri(), body=path.read_bytes(), headers={"Content-Type": content_type})

    return LocalStaticFetcher


def local_static_fetcher() -> Any:
    """A new :func:`_fetcher_class` instance (WeasyPrint keeps per-render state in it)."""
    return _fetcher_class()()


def render_pdf(template_name: str, context: dict[str, Any]) -> bytes:
    """``template_name`` rendered to PDF, resources resolved against the documents' static
    directory through :func:`local_static_fetcher`."""
    from weasyprint import HTML  # noqa: PLC0415 - see _fetcher_class

    html = render_to_string(template_name, context)
    document = HTML(string=html, base_url=DOCUMENTS_STATIC_DIR.as_uri() + "/", url_fetcher=local_static_fetcher())
    pdf: bytes = document.write_pdf()
    return pdf


# --- the documents ----------------------------------------------------------------------------


def invoice_pdf(invoice: Invoice, lines: Sequence[InvoiceLine] | None = None, *, buyer_contact: bool = True) -> bytes:
    """The (tax) invoice as PDF. The caller selected ``invoice`` under a principal that may
    see it and checked its checksum; ``lines`` are its lines (read here if not given).
    ``buyer_contact``: the buyer's address and e-mail too (not behind a pay link)."""
    context = {
        "invoice": invoice,
        "lines": list(lines) if lines is not None else list(invoice.lines.all()),
        "seller": invoice.seller_details or {},
        "buyer": invoice.buyer_details or {},
        "buyer_contact": buyer_contact,
    }
    return render_pdf("documents/tax_invoice.html", context)


def receipt_context(payment: Payment, invoice: Invoice | None = None) -> dict[str, Any]:
    """Who paid what, when, how, for which invoice, and what was due after it: the amount due
    after *this* payment, from the invoice's applied payments up to it (a later payment does
    not change an earlier receipt)."""
    invoice = invoice or payment.invoice
    applied = [row for row in payments_for_invoice(invoice=invoice) if row.status == PaymentStatus.APPLIED]
    position = next((index for index, row in enumerate(applied) if row.pk == payment.pk), len(applied))
    paid_before = sum(row.amount_minor for row in applied[:position])
    counted = payment.amount_minor if payment.status == PaymentStatus.APPLIED else 0
    return {
        "payment": payment,
        "invoice": invoice,
        "seller": invoice.seller_details or {},
        "buyer": invoice.buyer_details or {},
        "method": METHOD_NAMES.get(payment.method, payment.method),
        "received_at": timezone.localtime(payment.created_at, timezone=_seller_zone()),
        "paid_before_minor": paid_before,
        "due_after_minor": max(invoice.total_minor - paid_before - counted, 0),
    }


def receipt_pdf(payment: Payment, invoice: Invoice | None = None) -> bytes:
    """The receipt of ``payment`` (of ``invoice``, its invoice) as PDF."""
    return render_pdf("documents/receipt.html", receipt_context(payment, invoice))


def credit_note_pdf(note: CreditNote, lines: Sequence[CreditNoteLine] | None = None) -> bytes:
    """The adjustment note (tax credit note) as PDF: its lines reversed with their GST."""
    context = {
        "note": note,
        "invoice": note.invoice,
        "lines": list(lines) if lines is not None else list(note.lines.all()),
        "seller": note.seller_details or {},
        "buyer": note.buyer_details or {},
    }
    return render_pdf("documents/credit_note.html", context)


def _seller_zone() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(settings.SELLER_TIME_ZONE)


# --- the download views -----------------------------------------------------------------------


def _attachment(pdf: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "same-origin"
    return response


def _not_found(request: HttpRequest) -> HttpResponse:
    response = render(request, "portal/invoice_not_found.html", status=404)
    response["Cache-Control"] = "no-store"
    return response


def _unavailable(request: HttpRequest) -> HttpResponse:
    """The hosted page's "cannot be trusted, contact the seller" page: nothing from the row."""
    response = render(request, "portal/invoice_unavailable.html", {"seller_name": settings.SELLER_NAME}, status=409)
    response["Cache-Control"] = "no-store"
    return response


def _portal_document(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Login required (to ``settings.LOGIN_URL``); customers only (staff use the admin);
    never cached."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        principal = rls.current_principal()
        if not isinstance(principal, CustomerPrincipal):
            return redirect("admin:index")
        return view(request, principal, *args, **kwargs)

    return never_cache(login_required(require_safe(wrapped)))


@_portal_document
def invoice_pdf_download(request: HttpRequest, principal: CustomerPrincipal, invoice_id: uuid.UUID) -> HttpResponse:
    """``/invoices/<id>/tax-invoice.pdf``: an invoice the user may view, as PDF."""
    try:
        invoice = invoice_get_for_portal(principal=principal, invoice_id=invoice_id)
    except InvoiceNotFoundError:
        return _not_found(request)
    lines = list(invoice.lines.all())
    if not invoice_checksum_verify(principal=principal, invoice=invoice, attempted="portal_pdf", lines=lines):
        return _unavailable(request)
    return _attachment(invoice_pdf(invoice, lines), f"{invoice.number}.pdf")


@_portal_document
def receipt_pdf_download(request: HttpRequest, principal: CustomerPrincipal, payment_id: uuid.UUID) -> HttpResponse:
    """``/payments/<id>/receipt.pdf``: the receipt of an applied payment of an invoice the user
    may view (a held payment counts for nothing and has no receipt)."""
    try:
        payment, invoice = payment_get_for_portal(principal=principal, payment_id=payment_id)
    except InvoiceNotFoundError:
        return _not_found(request)
    if not invoice_checksum_verify(principal=principal, invoice=invoice, attempted="portal_receipt_pdf"):
        return _unavailable(request)
    return _attachment(receipt_pdf(payment, invoice), f"receipt-{invoice.number}-{str(payment.id)[:8]}.pdf")


@_portal_document
def credit_note_pdf_download(
    request: HttpRequest, principal: CustomerPrincipal, credit_note_id: uuid.UUID
) -> HttpResponse:
    """``/credit-notes/<id>.pdf``: a credit note of an invoice the user may view."""
    try:
        note = credit_note_get_for_portal(principal=principal, credit_note_id=credit_note_id)
    except InvoiceNotFoundError:
        return _not_found(request)
    lines = list(note.lines.all())
    if not credit_notes.is_valid(note, lines):
        return _unavailable(request)
    return _attachment(credit_note_pdf(note, lines), f"{note.number}.pdf")


@never_cache
@require_safe
def hosted_invoice_pdf(request: HttpRequest, token: str) -> HttpResponse:
    """``/pay/<token>/tax-invoice.pdf``: the pay link's invoice as PDF, no login, verified
    exactly as the hosted page (a bad token answers its "invalid or expired" page)."""
    try:
        claims = pay_link_verify(token)
    except PayLinkError as exc:
        return render(request, "portal/pay_link_invalid.html", {"status": exc.status_code}, status=exc.status_code)
    principal = CustomerPrincipal(user_id=PAY_LINK_USER_ID, customer_ids=frozenset({claims.customer_id}))
    with rls.acting_as(principal):
        try:
            invoice = invoice_get_for_pay_link(invoice_id=claims.invoice_id, customer_id=claims.customer_id)
        except InvoiceNotFoundError:
            return render(request, "portal/pay_link_invalid.html", {"status": 404}, status=404)
        lines = list(invoice.lines.all())
        if not invoice_checksum_verify(principal=principal, invoice=invoice, attempted="hosted_pdf", lines=lines):
            return _unavailable(request)
        return _attachment(invoice_pdf(invoice, lines, buyer_contact=False), f"{invoice.number}.pdf")
