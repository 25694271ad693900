"""Reads of invoices, scoped to the acting principal."""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from billing.models import CustomerUserObjectPermission
from invoices.errors import InvoiceNotFoundError
from invoices.models import Invoice, InvoiceStatus
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
