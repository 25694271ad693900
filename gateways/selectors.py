"""Reads of the payments ledger, scoped to the acting principal."""

from __future__ import annotations

import uuid

from gateways.models import Payment, PaymentAttempt, PaymentStatus, Refund
from invoices.errors import InvoiceNotFoundError
from invoices.models import Invoice
from invoices.selectors import invoice_get_for_portal
from paymenter import rls
from paymenter.principals import CustomerPrincipal, Principal


def payment_attempt_for_return(*, principal: Principal, attempt_id: uuid.UUID) -> PaymentAttempt | None:
    """The attempt a gateway's return URL names, with its invoice; ``None`` if there is none."""
    with rls.acting_as(principal):
        return PaymentAttempt.objects.select_related("invoice").filter(id=attempt_id).first()


def payments_for_invoice(*, invoice: Invoice) -> list[Payment]:
    """The payments of an invoice the caller's selector already let it see, oldest first
    (row-level security of the acting principal still applies)."""
    return list(Payment.objects.filter(invoice_id=invoice.pk).order_by("created_at", "id"))


def refunds_for_invoice(*, invoice: Invoice) -> list[Refund]:
    """The refunds of an invoice the caller's selector already let it see, oldest first."""
    return list(Refund.objects.filter(invoice_id=invoice.pk).order_by("created_at", "id"))


def payment_get_for_portal(*, principal: CustomerPrincipal, payment_id: uuid.UUID | str) -> tuple[Payment, Invoice]:
    """An applied payment of an invoice the portal user may view, with that (scoped) invoice
    (a held payment counts for nothing and has no receipt); any other is
    :class:`~invoices.errors.InvoiceNotFoundError` (the same 404 page)."""
    payment = Payment.objects.filter(id=payment_id, status=PaymentStatus.APPLIED).first()
    if payment is None:
        raise InvoiceNotFoundError()
    return payment, invoice_get_for_portal(principal=principal, invoice_id=payment.invoice_id)
