"""Reads of the payments ledger, scoped to the acting principal."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from gateways.models import Payment, PaymentAttempt
from paymenter import rls
from paymenter.principals import Principal


def payment_attempt_for_return(*, principal: Principal, attempt_id: uuid.UUID) -> PaymentAttempt | None:
    """The attempt a gateway's return URL names, with its invoice; ``None`` if there is none."""
    with rls.acting_as(principal):
        return PaymentAttempt.objects.select_related("invoice").filter(id=attempt_id).first()


def payments_for_invoice(*, principal: Principal, invoice_id: uuid.UUID) -> QuerySet[Payment]:
    """The invoice's payments, oldest first, as ``principal`` may see them. Evaluate it in
    the caller's scope."""
    del principal  # the caller's scope (rls) decides; kept for the selector convention
    return Payment.objects.filter(invoice_id=invoice_id).order_by("created_at")
