"""Reads of invoices, scoped to the acting principal."""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from billing.models import CustomerUserObjectPermission
from invoices.errors import InvoiceNotFoundError
from invoices.models import CreditNote, Invoice, InvoiceStatus
from paymenter.principals import CustomerPrincipal, Principal


def invoices_for_principal(*, principal: Principal) -> QuerySet[Invoice]:
    """Staff and system see every invoice; a portal user sees the invoices of customers
    on which they hold ``view_customer_invoices``."""
    queryset = Invoice.objects.select_related("customer")
    if isinstance(principal, CustomerPrincipal):
        permitted = CustomerUserObjectPermission.objects.filter(
            user_id=principal.user_id,
            permission__codename="view_customer_invoices",
            content_object_id__in=principal.customer_ids,
        ).values("content_object_id")
        queryset = queryset.filter(customer_id__in=principal.customer_ids).filter(customer_id__in=permitted)
    return queryset


def invoice_get(*, principal: Principal, invoice_id: uuid.UUID | str) -> Invoice:
    try:
        return invoices_for_principal(principal=principal).get(id=invoice_id)
    except (Invoice.DoesNotExist, ValueError, ValidationError) as exc:  # malformed id: not found
        raise InvoiceNotFoundError() from exc


def invoice_get_for_pay_link(*, invoice_id: uuid.UUID, customer_id: uuid.UUID) -> Invoice:
    """The issued invoice a verified pay link names, with its lines, only while it still
    belongs to the customer the link names; run it as that customer (``CustomerPrincipal``
    of ``customer_id``) so row-level security enforces the same bound."""
    try:
        return (
            Invoice.objects.exclude(status=InvoiceStatus.DRAFT)
            .prefetch_related("lines")
            .get(id=invoice_id, customer_id=customer_id)
        )
    except Invoice.DoesNotExist as exc:
        raise InvoiceNotFoundError() from exc


def invoice_get_for_update(*, principal: Principal, invoice_id: uuid.UUID | str) -> Invoice:
    """The invoice ``principal`` may see, locked (``FOR NO KEY UPDATE``) until the end of
    the caller's transaction; not-found exactly as :func:`invoice_get`."""
    visible = invoice_get(principal=principal, invoice_id=invoice_id)
    return Invoice.objects.select_for_update(no_key=True).get(pk=visible.pk)


def invoice_lock(*, invoice: Invoice) -> Invoice:
    """``invoice`` read again and locked (``FOR NO KEY UPDATE``) until the end of the caller's
    transaction, for a caller that already selected it with a selector that checked who may
    act on it (a pay link, the portal). Row-level security still applies to the read."""
    return Invoice.objects.select_related("customer").select_for_update(no_key=True, of=("self",)).get(pk=invoice.pk)


def _invoices_for_member(*, principal: CustomerPrincipal, permission: str) -> QuerySet[Invoice]:
    """The issued invoices of the customers on which the portal user holds ``permission``."""
    permitted = CustomerUserObjectPermission.objects.filter(
        user_id=principal.user_id,
        permission__codename=permission,
        content_object_id__in=principal.customer_ids,
    ).values("content_object_id")
    return (
        Invoice.objects.filter(customer_id__in=principal.customer_ids)
        .filter(customer_id__in=permitted)
        .exclude(status=InvoiceStatus.DRAFT)
    )


def invoices_for_portal(*, principal: CustomerPrincipal, status: str = "") -> QuerySet[Invoice]:
    """The portal's invoice list: issued invoices of every customer the user may view,
    newest first, optionally of one ``status`` (an unknown or draft status is ignored, so
    a hand-edited query string cannot reach drafts). One query per page, whatever its size:
    the list shows only the invoice's own columns (the buyer is frozen on the invoice)."""
    queryset = _invoices_for_member(principal=principal, permission="view_customer_invoices")
    if status in InvoiceStatus.values and status != InvoiceStatus.DRAFT:
        queryset = queryset.filter(status=status)
    return queryset.order_by("-issue_date", "-number")


def _invoice_get_for_member(*, principal: CustomerPrincipal, invoice_id: uuid.UUID | str, permission: str) -> Invoice:
    try:
        return _invoices_for_member(principal=principal, permission=permission).get(id=invoice_id)
    except (Invoice.DoesNotExist, ValueError, ValidationError) as exc:  # malformed id: not found
        raise InvoiceNotFoundError() from exc


def invoice_get_for_portal(*, principal: CustomerPrincipal, invoice_id: uuid.UUID | str) -> Invoice:
    """One issued invoice the portal user may view; another customer's, a draft and a
    missing one are the same :class:`InvoiceNotFoundError` (the same 404 page)."""
    return _invoice_get_for_member(principal=principal, invoice_id=invoice_id, permission="view_customer_invoices")


def invoice_get_for_portal_payment(*, principal: CustomerPrincipal, invoice_id: uuid.UUID | str) -> Invoice:
    """One issued invoice the portal user may pay (``pay_customer_invoices``): the
    selector that decides they may start its payment (``payment_attempt_start``)."""
    return _invoice_get_for_member(principal=principal, invoice_id=invoice_id, permission="pay_customer_invoices")


def invoice_may_pay(*, principal: CustomerPrincipal, invoice: Invoice) -> bool:
    """Whether the portal user may pay ``invoice`` (which they can see), to offer the buttons."""
    return _invoices_for_member(principal=principal, permission="pay_customer_invoices").filter(pk=invoice.pk).exists()


def credit_note_get_for_portal(*, principal: CustomerPrincipal, credit_note_id: uuid.UUID | str) -> CreditNote:
    """A credit note of an invoice the portal user may view, its ``invoice`` set to that
    (scoped) invoice; any other is :class:`InvoiceNotFoundError` (the same 404 page)."""
    note = CreditNote.objects.filter(id=credit_note_id).first()
    if note is None:
        raise InvoiceNotFoundError()
    note.invoice = invoice_get_for_portal(principal=principal, invoice_id=note.invoice_id)
    return note


def credit_notes_for_invoice(*, invoice: Invoice) -> list[CreditNote]:
    """The credit notes of an invoice the caller's selector already let it see (oldest first)."""
    return list(CreditNote.objects.filter(invoice_id=invoice.pk).order_by("created_at", "number"))
