"""Reads of the payments ledger, scoped to the acting principal."""

from __future__ import annotations

import uuid

from django.db.models import Sum

from gateways.models import Payment, PaymentAttempt, PaymentStatus, Refund, RefundStatus
from invoices.errors import InvoiceNotFoundError
from invoices.models import Invoice
from invoices.selectors import invoice_get_for_portal
from paymenter import rls
from paymenter.money import Money
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


REFUND_RESERVING = (RefundStatus.PENDING, RefundStatus.SUCCEEDED)


def payment_refundable_minor(payment: Payment) -> int:
    """What may still be refunded of ``payment``: what it took less every refund that has
    not failed (pending refunds are reservations). The refund service calls it with the
    invoice locked, so the answer holds until its commit."""
    reserved = Refund.objects.filter(payment_id=payment.id, status__in=REFUND_RESERVING).aggregate(
        total=Sum("amount_minor")
    )
    return payment.amount_minor - int(reserved["total"] or 0)


def payment_refundable(*, principal: Principal, payment_id: uuid.UUID | str) -> tuple[Payment, Money] | None:
    """A payment (with its invoice) as ``principal`` may see it, and what is left to refund of
    it; ``None`` when there is no such payment. The refund service checks it again under the
    invoice's lock: this is what the staff's Refund page shows."""
    with rls.acting_as(principal):
        payment = Payment.objects.select_related("invoice").filter(pk=payment_id).first()
        if payment is None:
            return None
        return payment, Money(payment_refundable_minor(payment), payment.currency)
