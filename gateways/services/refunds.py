"""Refunds: money given back from a payment, asked for by staff or made at the gateway.

Three ways in, one way to record:

* **Staff** (:func:`refund_request`, the admin's Refund page; billing and admin only) ask
  for an amount of one payment. In one transaction, under the invoice's lock, the amount is
  checked against what the payment took less every refund not failed (pending ones
  included: they are reservations) and a ``pending`` refund row is written. Two concurrent
  refund clicks queue on the lock, so the second sees the first's reservation and is
  refused. Then, outside any lock, the gateway is asked (idempotency key = the row's id, the
  row's id in the refund's metadata), and its answer is recorded by :func:`_refund_settle`.
* **The system** (:func:`refund_automatic`): a payment the fraud rules blocked after it
  was taken, or one staff rejected in the review queue, is given back whole - the same
  reservation and gateway request as staff's, without the staff-permission check.
* **The gateway** tells us of refunds by webhook (``charge.refunded``,
  ``PAYMENT.CAPTURE.REFUNDED``) - made in its dashboard, or ours coming back. The inbox
  fetches them back (``Gateway.refunds_fetch``) and :func:`refunds_settle` records each,
  matched to our row by the id in its metadata or by the gateway's refund id (unique), so
  any number of deliveries record a refund once.

Recording a succeeded refund of an applied payment issues a credit note and moves the
invoice's refunded total and status (``invoices.services.invoice_refund_apply``), with the
domain event O2S and the customer's e-mail follow from. A refund of a held payment (money
that never counted) needs no credit note: it marks the payment dealt with.

Every write verifies the invoice's checksum first: a tampered invoice never changes money.
A refund the gateway could not be asked about stays ``pending``; the reconciliation job
asks again with the same idempotency key (:func:`refunds_pending_retry`).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import audit_record
from audit.unit_of_work import unit_of_work
from gateways.base import GatewayRefund, GatewayRefundStatus, GatewayRequestError, GatewayUnavailableError
from gateways.errors import (
    InvalidRefundError,
    PaymentGatewayRefusedError,
    PaymentGatewayUnavailableError,
    PaymentNotFoundError,
    RefundExceedsRefundableError,
    RefundForbiddenError,
    RefundNotAllowedError,
)
from gateways.models import Payment, PaymentStatus, Refund, RefundOrigin, RefundStatus
from gateways.registry import gateway_for
from gateways.selectors import payment_refundable_minor
from invoices.errors import InvoiceChecksumMismatchError
from invoices.models import Invoice
from invoices.selectors import invoice_get_for_update
from invoices.services import REFUNDABLE, invoice_checksum_verify, invoice_refund_apply
from paymenter.card_numbers import card_numbers_refuse
from paymenter.money import Money
from paymenter.principals import Principal, SystemPrincipal

logger = logging.getLogger(__name__)

RETRY_PRINCIPAL = SystemPrincipal(label="worker:refund_retry")
RETRY_AFTER_SECONDS = 60


@dataclass(frozen=True)
class RefundSettlement:
    refund: Refund
    created: bool = False
    """True only for the call that wrote the row (a refund learnt from the gateway)."""
    completed: bool = False
    """True only for the call that moved it to ``succeeded`` (credit note, event, e-mail)."""


def refund_summary(refund: Refund) -> dict[str, Any]:
    """The refund as events and audit records describe it (ids and amounts)."""
    return {
        "refund_id": str(refund.id),
        "payment_id": str(refund.payment_id),
        "gateway": refund.gateway,
        "gateway_refund_id": refund.gateway_refund_id,
        "amount_minor": refund.amount_minor,
        "currency": refund.currency,
        "status": refund.status,
        "origin": refund.origin,
    }


def _audit(*, action: AuditAction, principal: Principal, refund: Refund, invoice: Invoice, **extra: Any) -> None:
    audit_record(
        action=action,
        principal=principal,
        object_type="invoice",
        object_id=str(invoice.id),
        customer_id=invoice.customer_id,
        payload={"number": invoice.number, **refund_summary(refund), **extra},
    )


def _lock_intact(*, principal: Principal, invoice_id: uuid.UUID, attempted: str) -> tuple[Invoice, bool]:
    invoice = invoice_get_for_update(principal=principal, invoice_id=invoice_id)
    return invoice, invoice_checksum_verify(principal=principal, invoice=invoice, attempted=attempted)


def refund_request(
    *, principal: Principal, payment_id: uuid.UUID | str, amount: Money, reason: str, user_id: int
) -> Refund:
    """Staff refund ``amount`` of a payment through the gateway that took it.

    ``user_id`` must hold ``invoices.process_refund`` (billing and admin; never support,
    never a customer): checked here too, whatever channel calls (403 ``refund_forbidden``).
    Returns the refund row: ``succeeded`` (credit note issued), or ``pending`` when the
    gateway has not finished it (its webhook or the reconciliation job completes it).
    Raises ``RefundExceedsRefundableError`` (409) when ``amount`` is more than may still be
    refunded, ``RefundNotAllowedError`` (409) for a payment or invoice that cannot be
    refunded, ``InvoiceChecksumMismatchError`` (409) for a tampered invoice,
    ``CardNumberNotAllowedError`` (400) for a reason holding a card number - each without
    writing anything - and ``PaymentGatewayRefusedError`` (502) / ``...UnavailableError``
    (503) when the gateway refused (the row is ``failed``) or could not be asked (it stays
    ``pending`` and is retried).
    """
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None or not user.has_perm("invoices.process_refund"):
        raise RefundForbiddenError()
    refund, transaction_id = _refund_reserve(
        principal=principal,
        payment_id=payment_id,
        amount=amount,
        reason=reason,
        origin=RefundOrigin.STAFF,
        user_id=user_id,
    )
    return _refund_ask(principal=principal, refund=refund, transaction_id=transaction_id)


def refund_automatic(*, principal: Principal, payment_id: uuid.UUID | str, reason: str) -> Refund:
    """Refund what is left of a payment the fraud rules blocked or staff rejected in review,
    with no staff member asking: the system path, the same as :func:`refund_request` but
    for the staff-permission check (its callers decided) and the amount (all that may still
    be refunded). Returns the refund row; raises as :func:`refund_request` does, and
    ``RefundExceedsRefundableError`` when nothing is left to refund."""
    with unit_of_work(principal):
        payment = Payment.objects.filter(id=payment_id).first()
        if payment is None:
            raise PaymentNotFoundError()
        left = Money(payment.amount_minor, payment.currency)
    refund, transaction_id = _refund_reserve(
        principal=principal,
        payment_id=payment_id,
        amount=left,
        reason=reason,
        origin=RefundOrigin.AUTOMATIC,
        user_id=None,
        whole_remainder=True,
    )
    return _refund_ask(principal=principal, refund=refund, transaction_id=transaction_id)


def _refund_reserve(
    *,
    principal: Principal,
    payment_id: uuid.UUID | str,
    amount: Money,
    reason: str,
    origin: RefundOrigin,
    user_id: int | None,
    whole_remainder: bool = False,
) -> tuple[Refund, str]:
    """Check and write the ``pending`` refund row under the invoice's lock (nothing written
    on a refusal); returns it and the payment's gateway transaction id to ask about.
    ``whole_remainder``: refund whatever is still refundable (``amount`` is its upper bound)."""
    card_numbers_refuse({"reason": reason})
    if amount.minor <= 0:
        raise InvalidRefundError(field="amount", message="A refund is more than nothing.")
    if len(reason) > 500:
        raise InvalidRefundError(field="reason", message="The reason is at most 500 characters.")
    with unit_of_work(principal):
        payment = Payment.objects.filter(id=payment_id).first()
        if payment is None:
            raise PaymentNotFoundError()
        invoice, intact = _lock_intact(principal=principal, invoice_id=payment.invoice_id, attempted="refund")
        if intact:
            if amount.currency != payment.currency:
                raise InvalidRefundError(
                    field="amount", message=f"The payment is in {payment.currency}, not {amount.currency}."
                )
            # the amount first: a payment refunded in full (its invoice now ``refunded``) answers
            # "nothing left", whichever of two concurrent clicks got the lock second
            refundable = payment_refundable_minor(payment)
            if whole_remainder and 0 < refundable < amount.minor:
                amount = Money(refundable, amount.currency)
            if amount.minor > refundable:
                raise RefundExceedsRefundableError(requested=amount, refundable=Money(refundable, payment.currency))
            if payment.status == PaymentStatus.APPLIED and invoice.status not in REFUNDABLE:
                raise RefundNotAllowedError(
                    f"An invoice that is {invoice.status} cannot be refunded: only a fully paid one can."
                )
            refund = Refund.objects.create(
                invoice=invoice,
                customer_id=invoice.customer_id,
                payment=payment,
                gateway=payment.gateway,
                amount_minor=amount.minor,
                currency=amount.currency,
                origin=origin,
                reason=reason[:500],
                requested_by_id=user_id,
            )
            _audit(action=AuditAction.REFUND_REQUESTED, principal=principal, refund=refund, invoice=invoice)
    if not intact:
        raise InvoiceChecksumMismatchError()
    return refund, payment.transaction_id


def _refund_ask(*, principal: Principal, refund: Refund, transaction_id: str) -> Refund:
    """Ask the gateway for ``refund`` (no lock held) and record its answer."""
    try:
        reported = gateway_for(refund.gateway).refund(
            transaction_id=transaction_id,
            amount=Money(refund.amount_minor, refund.currency),
            idempotency_key=f"paymenter-refund-{refund.id}",
            request_id=refund.id,
        )
    except GatewayUnavailableError as exc:
        logger.warning("refund %s: gateway unavailable, stays pending for retry (%s)", refund.id, exc)
        raise PaymentGatewayUnavailableError() from exc
    except GatewayRequestError as exc:
        _refund_fail(principal=principal, refund_id=refund.id, reason=str(exc))
        raise PaymentGatewayRefusedError() from exc
    return _refund_settle(principal=principal, refund_id=refund.id, reported=reported).refund


def _refund_fail(*, principal: Principal, refund_id: uuid.UUID, reason: str) -> None:
    with unit_of_work(principal):
        refund = Refund.objects.select_for_update(no_key=True).get(pk=refund_id)
        if refund.status != RefundStatus.PENDING:
            return
        refund.status = RefundStatus.FAILED
        refund.failure_reason = reason[:255]
        refund.settled_at = timezone.now()
        refund.save(update_fields=["status", "failure_reason", "settled_at"])
        invoice = Invoice.objects.get(pk=refund.invoice_id)
        _audit(action=AuditAction.REFUND_FAILED, principal=principal, refund=refund, invoice=invoice, reason=reason)


def _refund_settle(*, principal: Principal, refund_id: uuid.UUID, reported: GatewayRefund) -> RefundSettlement:
    """Record what the gateway says of our refund row ``refund_id`` (idempotent)."""
    with unit_of_work(principal):
        refund = Refund.objects.get(pk=refund_id)
        invoice, intact = _lock_intact(principal=principal, invoice_id=refund.invoice_id, attempted="refund")
        if intact:
            refund = Refund.objects.select_for_update(no_key=True).get(pk=refund_id)
            completed = _refund_transition(principal=principal, refund=refund, invoice=invoice, reported=reported)
    if not intact:
        raise InvoiceChecksumMismatchError()
    return RefundSettlement(refund=refund, completed=completed)


def _refund_transition(*, principal: Principal, refund: Refund, invoice: Invoice, reported: GatewayRefund) -> bool:
    """Move a locked refund row to what the gateway reports; True when it completed now."""
    if reported.refund_id and not refund.gateway_refund_id:
        refund.gateway_refund_id = reported.refund_id[:255]
    refund.gateway_status = reported.gateway_status[:64]
    if refund.status != RefundStatus.PENDING or reported.status is GatewayRefundStatus.PENDING:
        refund.save(update_fields=["gateway_refund_id", "gateway_status"])
        return False
    refund.settled_at = timezone.now()
    if reported.status is GatewayRefundStatus.FAILED:
        refund.status = RefundStatus.FAILED
        refund.save(update_fields=["gateway_refund_id", "gateway_status", "status", "settled_at"])
        _audit(action=AuditAction.REFUND_FAILED, principal=principal, refund=refund, invoice=invoice)
        return False
    refund.status = RefundStatus.SUCCEEDED
    payment = Payment.objects.get(pk=refund.payment_id)
    if payment.status == PaymentStatus.APPLIED:
        refund.credit_note = invoice_refund_apply(
            principal=principal,
            invoice=invoice,
            amount_minor=refund.amount_minor,
            reason=refund.reason or f"Refund {refund.gateway_refund_id}",
            refund=refund_summary(refund),
        )
    elif payment.resolved_at is None:  # a held payment given back: dealt with
        payment.resolved_at = refund.settled_at
        payment.resolved_by_id = refund.requested_by_id
        payment.save(update_fields=["resolved_at", "resolved_by"])
    refund.save(update_fields=["gateway_refund_id", "gateway_status", "status", "settled_at", "credit_note"])
    _audit(action=AuditAction.REFUND_SUCCEEDED, principal=principal, refund=refund, invoice=invoice)
    return True


def refunds_settle(*, principal: Principal, reported: list[GatewayRefund], recorded_by: str) -> list[RefundSettlement]:
    """Record refunds the gateway reports (webhook, reconciliation): each once.

    A refund is ours when its metadata names our row, else it is matched by the gateway's
    refund id; one we never asked for (made in the dashboard) is written ``gateway``-origin.
    A refund of a payment not recorded here is skipped (logged). One that would refund more
    than the payment has left is refused for staff (``RefundExceedsRefundableError``).
    """
    results: list[RefundSettlement] = []
    for item in reported:
        settled = _refund_settle_reported(principal=principal, reported=item, recorded_by=recorded_by)
        if settled is not None:
            results.append(settled)
    return results


def _refund_settle_reported(
    *, principal: Principal, reported: GatewayRefund, recorded_by: str
) -> RefundSettlement | None:
    if reported.request_id is not None:
        with unit_of_work(principal):
            ours = Refund.objects.filter(id=reported.request_id, gateway=reported.gateway).first()
        if ours is not None:
            return _refund_settle(principal=principal, refund_id=ours.id, reported=reported)
    with unit_of_work(principal):
        payment = Payment.objects.filter(gateway=reported.gateway, transaction_id=reported.transaction_id).first()
        if payment is None:
            logger.warning(
                "%s refund %s of %s: no such payment recorded here; skipped",
                reported.gateway,
                reported.refund_id,
                reported.transaction_id,
            )
            return None
        invoice, intact = _lock_intact(principal=principal, invoice_id=payment.invoice_id, attempted="refund")
        if intact:
            existing = Refund.objects.filter(gateway=reported.gateway, gateway_refund_id=reported.refund_id).first()
            if existing is None and reported.status is GatewayRefundStatus.FAILED:
                return None  # never ours, never moved money
            if existing is None:
                refundable = payment_refundable_minor(payment)
                if reported.amount.currency != payment.currency or reported.amount.minor > refundable:
                    raise RefundExceedsRefundableError(
                        requested=reported.amount, refundable=Money(refundable, payment.currency)
                    )
                existing = Refund.objects.create(
                    invoice=invoice,
                    customer_id=invoice.customer_id,
                    payment=payment,
                    gateway=reported.gateway,
                    gateway_refund_id=reported.refund_id[:255],
                    amount_minor=reported.amount.minor,
                    currency=reported.amount.currency,
                    origin=RefundOrigin.GATEWAY,
                    reason=f"Refunded at {reported.gateway} ({recorded_by})"[:500],
                )
                created = True
            else:
                created = False
                existing = Refund.objects.select_for_update(no_key=True).get(pk=existing.pk)
            completed = _refund_transition(principal=principal, refund=existing, invoice=invoice, reported=reported)
    if not intact or existing is None:
        raise InvoiceChecksumMismatchError()
    return RefundSettlement(refund=existing, created=created, completed=completed)


def refunds_pending_retry(*, limit: int = 100) -> int:
    """Ask the gateway again about staff refunds left ``pending`` without its answer (it was
    unavailable): same idempotency key, so a refund it did make is returned, not repeated.
    Returns how many were asked."""
    cutoff = timezone.now() - timedelta(seconds=RETRY_AFTER_SECONDS)
    with unit_of_work(RETRY_PRINCIPAL):
        due = list(
            Refund.objects.filter(status=RefundStatus.PENDING, gateway_refund_id="", created_at__lt=cutoff)
            .select_related("payment")
            .order_by("created_at")[:limit]
        )
    for refund in due:
        try:
            _refund_ask(principal=RETRY_PRINCIPAL, refund=refund, transaction_id=refund.payment.transaction_id)
        except (PaymentGatewayUnavailableError, PaymentGatewayRefusedError, InvoiceChecksumMismatchError) as exc:
            logger.warning("refund %s retry: %s", refund.id, exc)
    return len(due)
