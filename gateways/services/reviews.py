"""The fraud review queue: staff decide a payment the rules held for review.

A payment the fraud rules' ``after_report`` answered "review" is recorded ``held`` with
``held_reason=risk_review`` (``gateways.services.ledger``): the money was taken, the
invoice stays unpaid and O2S heard ``payment.review_required``. Billing staff and admins
(``gateways.review_payment``; support only views the queue) then:

* **approve** (:func:`payment_review_approve`): under the invoice's lock, its checksum
  verified, the payment becomes ``applied`` through the ledger's own apply step
  (``payment_apply``): ``payment.review_released`` is recorded, then ``invoice.paid`` /
  ``payment.recorded``, each once - a second approval (a double click, two staff at
  once) finds the payment applied and changes nothing;
* **reject** (:func:`payment_review_reject`): the payment is marked dealt with under the
  same lock, then - after the commit, no lock held - given back through the gateway
  (``refunds.refund_automatic``), and the invoice stays open or, with
  ``FRAUD_REJECT_ACTION="void"`` and nothing else paid on it, is voided.

Both check the permission themselves, whatever channel calls, and audit the decision with
the staff member who made it.
"""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import audit_record
from audit.unit_of_work import unit_of_work
from gateways.base import GatewayCode
from gateways.errors import PaymentNotFoundError, PaymentReviewForbiddenError, PaymentReviewNotAllowedError
from gateways.models import HeldReason, Payment, PaymentStatus
from gateways.services.ledger import PAYABLE, payment_apply, payment_summary
from gateways.services.refunds import refund_automatic
from invoices.errors import InvoiceChecksumMismatchError
from invoices.events import InvoiceEvent, invoice_event_record
from invoices.models import Invoice, InvoiceStatus
from invoices.selectors import invoice_get_for_update
from invoices.services import invoice_checksum_verify, invoice_void
from paymenter.principals import Principal

logger = logging.getLogger(__name__)

REVIEW_PERMISSION = "gateways.review_payment"
REJECT_ACTIONS = ("reopen", "void")


def _may_review(user_id: int) -> None:
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None or not user.has_perm(REVIEW_PERMISSION):
        raise PaymentReviewForbiddenError()


def _lock_payment(*, principal: Principal, payment_id: uuid.UUID | str, attempted: str) -> tuple[Payment, Invoice]:
    """The payment, re-read under its invoice's lock (every decision on one invoice queues
    there); raises ``InvoiceChecksumMismatchError`` (recorded, alerted) for a tampered one."""
    try:
        payment = Payment.objects.filter(id=uuid.UUID(str(payment_id))).first()
    except ValueError as exc:  # a malformed id names nothing
        raise PaymentNotFoundError() from exc
    if payment is None:
        raise PaymentNotFoundError()
    invoice = invoice_get_for_update(principal=principal, invoice_id=payment.invoice_id)
    if not invoice_checksum_verify(principal=principal, invoice=invoice, attempted=attempted):
        raise _Tampered()
    return Payment.objects.select_for_update(no_key=True).get(pk=payment.pk), invoice


class _Tampered(Exception):
    """Leaves the unit of work (the detection it recorded commits first, see callers)."""


def _audit(*, action: AuditAction, principal: Principal, payment: Payment, user_id: int, **extra: object) -> None:
    audit_record(
        action=action,
        principal=principal,
        object_type="invoice",
        object_id=str(payment.invoice_id),
        customer_id=payment.customer_id,
        payload={**payment_summary(payment), "user_id": user_id, **extra},
    )


def payment_review_approve(*, principal: Principal, payment_id: uuid.UUID | str, user_id: int) -> Payment:
    """Staff approve a payment held for fraud review: it counts from now on.

    Records ``payment.review_released`` then ``invoice.paid`` / ``payment.recorded``, and
    audits the approval with ``user_id``. Idempotent: an approved payment is returned
    unchanged. Refused with nothing written: a user without ``gateways.review_payment``
    (403), a payment not waiting for review or that can no longer count - rejected, the
    invoice paid or voided meanwhile (409: refund it instead) - and a tampered invoice (409).
    """
    _may_review(user_id)
    tampered = False
    with unit_of_work(principal):
        try:
            payment, invoice = _lock_payment(principal=principal, payment_id=payment_id, attempted="payment_review")
        except _Tampered:
            tampered = True
        else:
            if payment.status == PaymentStatus.APPLIED and payment.resolved_at is not None:
                return payment  # approved already
            _reviewable(payment)
            if invoice.status not in PAYABLE or payment.amount_minor > invoice.amount_due_minor:
                raise PaymentReviewNotAllowedError(
                    f"The invoice is {invoice.status} with {invoice.amount_due_minor} due: "
                    "this payment can no longer count. Reject it to refund it."
                )
            payment.status = PaymentStatus.APPLIED
            payment.held_reason = ""
            payment.resolved_at = timezone.now()
            payment.resolved_by_id = user_id
            payment.save(update_fields=["status", "held_reason", "resolved_at", "resolved_by"])
            invoice_event_record(
                event=InvoiceEvent.PAYMENT_REVIEW_RELEASED, invoice=invoice, extra={"payment": payment_summary(payment)}
            )
            _audit(action=AuditAction.PAYMENT_REVIEW_APPROVED, principal=principal, payment=payment, user_id=user_id)
            payment_apply(principal=principal, invoice=invoice, payment=payment)
    if tampered:
        raise InvoiceChecksumMismatchError()
    return payment


def _rejected(payment: Payment) -> bool:
    return (
        payment.status == PaymentStatus.HELD
        and payment.held_reason == HeldReason.RISK_REVIEW
        and payment.resolved_at is not None
    )


def _reviewable(payment: Payment) -> None:
    if payment.status != PaymentStatus.HELD or payment.held_reason != HeldReason.RISK_REVIEW:
        raise PaymentReviewNotAllowedError("This payment is not waiting for a fraud review.")
    if payment.resolved_at is not None:
        raise PaymentReviewNotAllowedError("This payment was already rejected.")


def payment_review_reject(*, principal: Principal, payment_id: uuid.UUID | str, user_id: int) -> Payment:
    """Staff reject a payment held for fraud review: it is given back and never counts.

    Under the invoice's lock the payment is marked dealt with and the rejection audited;
    after the commit the gateway refunds it (``refund_automatic``: a bank transfer stays
    for staff to pay back by hand) and, with ``FRAUD_REJECT_ACTION="void"``, an invoice
    nothing else was paid on is voided (``invoice.voided``); otherwise it stays open.
    Idempotent: a rejected payment is returned unchanged. Refused with nothing written: a
    user without ``gateways.review_payment`` (403), a payment not waiting for review (409),
    a tampered invoice (409). A refund the gateway refused or could not be asked about is
    raised after the rejection is recorded (the refund row says which: ``failed`` for
    staff, ``pending`` for the retry job).
    """
    _may_review(user_id)
    action = str(settings.FRAUD_REJECT_ACTION)
    if action not in REJECT_ACTIONS:
        raise ValueError(f"FRAUD_REJECT_ACTION must be one of {REJECT_ACTIONS}, not {action!r}")
    tampered = False
    with unit_of_work(principal):
        try:
            payment, invoice = _lock_payment(principal=principal, payment_id=payment_id, attempted="payment_review")
        except _Tampered:
            tampered = True
        else:
            if _rejected(payment):
                return payment  # rejected already
            _reviewable(payment)
            payment.resolved_at = timezone.now()
            payment.resolved_by_id = user_id
            payment.save(update_fields=["resolved_at", "resolved_by"])
            void = action == "void" and invoice.status == InvoiceStatus.OPEN and not invoice.amount_paid_minor
            _audit(
                action=AuditAction.PAYMENT_REVIEW_REJECTED,
                principal=principal,
                payment=payment,
                user_id=user_id,
                invoice_action="void" if void else "reopen",
            )
            if void:
                invoice_void(principal=principal, invoice_id=invoice.id, reason="Payment rejected in fraud review")
    if tampered:
        raise InvoiceChecksumMismatchError()
    if payment.gateway != GatewayCode.BANK_TRANSFER:
        refund_automatic(principal=principal, payment_id=payment.id, reason="Rejected in fraud review")
    return payment
