"""Recording money a gateway took: the one path every payment takes into the ledger.

Webhooks, the customer's return page and the reconciliation job all end here, with what
the gateway reported when asked (``Gateway.payment_fetch``), never with what a webhook
body or a browser claimed. :func:`payment_settle` runs in one transaction:

1. lock the invoice (``FOR NO KEY UPDATE``): every recorder of one invoice queues here;
2. a payment already recorded for this gateway transaction changes nothing (the unique
   ``(gateway, transaction_id)`` constraint backs it);
3. verify the invoice's checksum: a mismatch refuses, records and alerts, and no payment
   is written;
4. write the payment row: ``applied``, or ``held`` (wrong currency, an amount other than
   was asked for, more than is due, an invoice no longer payable, or the fraud rules'
   ``after_report`` did not allow it: ``risk_review`` waits in the review queue and O2S
   hears ``payment.review_required``; ``risk_blocked`` is refunded automatically after the
   commit) - a held payment never counts and is an item for billing staff;
5. for an applied payment, set the invoice's amount paid to the sum of its applied rows
   (``invoices.services.invoice_payments_apply``: ``paid`` exactly when nothing is due);
6. audit it and record the domain event (``invoice.paid`` / ``payment.recorded``), from
   which the O2S callback and the receipt follow.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import audit_record
from audit.unit_of_work import unit_of_work
from gateways.base import GatewayCode, GatewayPayment, GatewayPaymentStatus, PaymentMethod
from gateways.errors import PaymentError
from gateways.models import AttemptStatus, HeldReason, Payment, PaymentAttempt, PaymentStatus
from gateways.risk import PaymentReportedContext, RiskDecision, risk_assessor
from gateways.services.refunds import refund_automatic
from invoices.errors import InvoiceChecksumMismatchError
from invoices.events import InvoiceEvent, invoice_event_record
from invoices.models import Invoice, InvoiceStatus
from invoices.selectors import invoice_get_for_update
from invoices.services import invoice_checksum_verify, invoice_payments_apply
from paymenter.money import Money
from paymenter.principals import Principal, SystemPrincipal

logger = logging.getLogger(__name__)

PAYABLE = (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE)
RISK_HELD_REASONS = {RiskDecision.REVIEW: HeldReason.RISK_REVIEW, RiskDecision.BLOCK: HeldReason.RISK_BLOCKED}
AUTOMATIC_REFUND_PRINCIPAL = SystemPrincipal(label="worker:fraud_refund")


@dataclass(frozen=True)
class Settlement:
    """What settling a reported payment did."""

    status: GatewayPaymentStatus
    payment: Payment | None = None
    created: bool = False
    """True only for the one call that wrote the payment row."""
    attempt_id: uuid.UUID | None = None
    ignored_reason: str = ""
    """Set when the report names nothing of ours (no attempt, no invoice)."""


class PaymentInvoiceMismatchError(Exception):
    """The gateway's object names another invoice than our attempt: refused, for staff."""


def _attempt_for(reported: GatewayPayment) -> PaymentAttempt | None:
    attempts = PaymentAttempt.objects.filter(gateway=reported.gateway)
    if reported.session_id:
        found = attempts.filter(gateway_session_id=reported.session_id).first()
        if found is not None:
            return found
    if reported.attempt_id is not None:
        return attempts.filter(id=reported.attempt_id).first()
    return None


def payment_settle(*, principal: Principal, reported: GatewayPayment, recorded_by: str) -> Settlement:
    """Bring the ledger in line with what the gateway reported about one payment.

    Idempotent: any number of calls, concurrent or repeated, for the same gateway
    transaction record at most one payment and cause its effects once.
    """
    with unit_of_work(principal):
        attempt = _attempt_for(reported)
    if attempt is not None and reported.invoice_id is not None and reported.invoice_id != attempt.invoice_id:
        logger.error(
            "gateway %s transaction %s names invoice %s but its attempt %s is for invoice %s",
            reported.gateway,
            reported.transaction_id,
            reported.invoice_id,
            attempt.id,
            attempt.invoice_id,
        )
        raise PaymentInvoiceMismatchError(f"{reported.gateway} {reported.transaction_id}: invoice mismatch")
    invoice_id = attempt.invoice_id if attempt is not None else reported.invoice_id
    attempt_id = attempt.id if attempt is not None else None
    if invoice_id is None:
        return Settlement(status=reported.status, ignored_reason="names no invoice of ours")
    if reported.status is GatewayPaymentStatus.SUCCEEDED and reported.amount.minor <= 0:
        return Settlement(status=reported.status, attempt_id=attempt_id, ignored_reason="nothing was paid")
    if reported.status is GatewayPaymentStatus.SUCCEEDED:
        return payment_record(
            principal=principal, reported=reported, invoice_id=invoice_id, attempt=attempt, recorded_by=recorded_by
        )
    if attempt is not None and reported.status in (GatewayPaymentStatus.FAILED, GatewayPaymentStatus.CANCELED):
        _attempt_close(principal=principal, attempt=attempt, reported=reported)
    return Settlement(status=reported.status, attempt_id=attempt_id)


def _attempt_close(*, principal: Principal, attempt: PaymentAttempt, reported: GatewayPayment) -> None:
    """An open attempt the gateway says failed or expired stops being open (so a new one can
    start). A failed try inside a session that can still take payment keeps it open: the
    customer may retry there, and the session's completion or expiry closes it."""
    if reported.status is GatewayPaymentStatus.FAILED and reported.session_id and not reported.session_closed:
        with unit_of_work(principal):
            PaymentAttempt.objects.filter(pk=attempt.pk, status=AttemptStatus.OPEN).update(
                failure_reason=reported.failure_reason, gateway_status=reported.gateway_status
            )
        return
    status = AttemptStatus.FAILED if reported.status is GatewayPaymentStatus.FAILED else AttemptStatus.EXPIRED
    with unit_of_work(principal):
        PaymentAttempt.objects.filter(pk=attempt.pk, status=AttemptStatus.OPEN).update(
            status=status,
            settled_at=timezone.now(),
            failure_reason=reported.failure_reason,
            gateway_status=reported.gateway_status,
        )


def _held_reason(*, invoice: Invoice, reported: GatewayPayment, attempt: PaymentAttempt | None, exact: bool) -> str:
    """Why a payment must not count ("" when it may). ``exact``: a gateway payment must be
    for exactly what was asked - its attempt's amount, or with no attempt of ours (created
    at the gateway directly) the amount due - so a card payment is never partial."""
    if invoice.status not in PAYABLE:
        return HeldReason.INVOICE_NOT_PAYABLE
    if reported.amount.currency != invoice.currency:
        return HeldReason.CURRENCY_MISMATCH
    if attempt is not None and (
        reported.amount.currency != attempt.currency or reported.amount.minor != attempt.amount_minor
    ):
        return HeldReason.AMOUNT_MISMATCH
    if reported.amount.minor > invoice.amount_due_minor:
        return HeldReason.OVERPAYMENT
    if exact and reported.amount.minor != invoice.amount_due_minor and attempt is None:
        return HeldReason.AMOUNT_MISMATCH
    return ""


def payment_summary(payment: Payment) -> dict[str, Any]:
    """The payment as events and audit records describe it (ids and amounts, no card data)."""
    return {
        "payment_id": str(payment.id),
        "gateway": payment.gateway,
        "method": payment.method,
        "transaction_id": payment.transaction_id,
        "amount_minor": payment.amount_minor,
        "currency": payment.currency,
        "status": payment.status,
        "held_reason": payment.held_reason,
    }


def payment_record(
    *,
    principal: Principal,
    reported: GatewayPayment,
    invoice_id: uuid.UUID,
    attempt: PaymentAttempt | None,
    recorded_by: str,
    exact: bool = True,
) -> Settlement:
    """Write the payment of a succeeded gateway transaction (steps 1-6 of the module doc).

    ``exact``: a gateway's payment must be for exactly what was asked (else it is held);
    money received otherwise (a bank transfer, a payment staff record) may be partial.
    """
    attempt_id = attempt.id if attempt is not None else None
    with unit_of_work(principal):
        invoice = invoice_get_for_update(principal=principal, invoice_id=invoice_id)
        existing = Payment.objects.filter(gateway=reported.gateway, transaction_id=reported.transaction_id).first()
        if existing is not None:
            if existing.invoice_id != invoice.id or existing.amount_minor != reported.amount.minor:
                logger.error(  # the same transaction reported differently: for staff, never a second row
                    "%s transaction %s already recorded for invoice %s (%s); now reported for %s (%s)",
                    reported.gateway,
                    reported.transaction_id,
                    existing.invoice_id,
                    existing.amount_minor,
                    invoice.id,
                    reported.amount.minor,
                )
            return Settlement(status=reported.status, payment=existing, attempt_id=attempt_id)
        intact = invoice_checksum_verify(principal=principal, invoice=invoice, attempted="payment")
        if intact:
            reason = _held_reason(invoice=invoice, reported=reported, attempt=attempt, exact=exact)
            assessment_id: uuid.UUID | None = None
            if not reason:
                assessment = risk_assessor().after_report(
                    PaymentReportedContext(invoice_id=invoice.id, customer_id=invoice.customer_id, payment=reported)
                )
                assessment_id = assessment.assessment_id
                reason = RISK_HELD_REASONS.get(assessment.decision, "")
            card = reported.card
            payment = Payment.objects.create(
                invoice=invoice,
                customer_id=invoice.customer_id,
                attempt=attempt,
                gateway=reported.gateway,
                method=reported.method,
                transaction_id=reported.transaction_id,
                amount_minor=reported.amount.minor,
                currency=reported.amount.currency,
                status=PaymentStatus.HELD if reason else PaymentStatus.APPLIED,
                held_reason=reason,
                card_brand=card.brand if card else "",
                card_country=card.country if card else "",
                cvc_check=card.cvc_check if card else "",
                address_postal_code_check=card.address_postal_code_check if card else "",
                address_line1_check=card.address_line1_check if card else "",
                three_d_secure_result=card.three_d_secure_result if card else "",
                recorded_by=recorded_by[:64],
                risk_assessment_id=assessment_id,
            )
            summary = payment_summary(payment)
            if reason == HeldReason.RISK_REVIEW:  # O2S hears that the order waits (no reasons: staff's)
                invoice_event_record(
                    event=InvoiceEvent.PAYMENT_REVIEW_REQUIRED, invoice=invoice, extra={"payment": summary}
                )
            if reason:
                logger.error(
                    "payment %s of invoice %s held for staff: %s", payment.id, invoice.number or invoice.id, reason
                )
                audit_record(
                    action=AuditAction.PAYMENT_HELD,
                    principal=principal,
                    object_type="invoice",
                    object_id=str(invoice.id),
                    customer_id=invoice.customer_id,
                    payload=summary,
                )
            else:
                payment_apply(principal=principal, invoice=invoice, payment=payment)
            if attempt is not None:
                PaymentAttempt.objects.filter(pk=attempt.pk).exclude(status=AttemptStatus.SUCCEEDED).update(
                    status=AttemptStatus.SUCCEEDED, settled_at=timezone.now(), gateway_status=reported.gateway_status
                )
    if not intact:
        raise InvoiceChecksumMismatchError()
    if payment.held_reason == HeldReason.RISK_BLOCKED:
        _blocked_payment_refund(payment=payment)
    return Settlement(status=reported.status, payment=payment, created=True, attempt_id=attempt_id)


def payment_apply(*, principal: Principal, invoice: Invoice, payment: Payment) -> None:
    """Count an applied ``payment``: the invoice's amount paid becomes the sum of its applied
    rows (``paid`` exactly when nothing is due) and ``invoice.paid`` / ``payment.recorded``
    is recorded. Call in the caller's unit of work, the invoice locked and verified, after
    the payment row is ``applied`` (the ledger, a review approved)."""
    paid = Payment.objects.filter(invoice=invoice, status=PaymentStatus.APPLIED).aggregate(total=Sum("amount_minor"))[
        "total"
    ]
    invoice_payments_apply(
        principal=principal, invoice=invoice, amount_paid_minor=int(paid or 0), payment=payment_summary(payment)
    )


def _blocked_payment_refund(*, payment: Payment) -> None:
    """Give back a payment the rules blocked after it was taken (no lock held: HTTP).

    A bank transfer is not refunded here: its "refund" records that staff paid the money
    back by hand, so it stays held for them. A refund the gateway refused or could not be
    asked about is left to staff (refused: the payment stays held, unresolved) or to the
    reconciliation job (pending: asked again); the payment's record stands either way.
    """
    if payment.gateway == GatewayCode.BANK_TRANSFER:
        return
    try:
        refund_automatic(
            principal=AUTOMATIC_REFUND_PRINCIPAL, payment_id=payment.id, reason="Blocked by the fraud rules"
        )
    except PaymentError:
        logger.exception("payment %s blocked by the fraud rules: automatic refund not completed", payment.id)
    except InvoiceChecksumMismatchError:
        logger.exception("payment %s blocked by the fraud rules: invoice tampered, not refunded", payment.id)


def payment_receive(
    *,
    principal: Principal,
    invoice_id: uuid.UUID,
    amount: Money,
    gateway: GatewayCode,
    transaction_id: str,
    method: PaymentMethod,
    recorded_by: str,
) -> Settlement:
    """Record money received for an invoice without a payment attempt: a bank transfer
    matched to it, or demo data. Partial payments reduce what is due; more than is due,
    or another currency, is held for staff. Idempotent on ``(gateway, transaction_id)``."""
    if not transaction_id or len(transaction_id) > 255:
        raise ValueError("transaction_id: required, at most 255 characters")
    if amount.minor <= 0:
        raise ValueError("amount: a payment is more than nothing")
    reported = GatewayPayment(
        gateway=gateway,
        transaction_id=transaction_id,
        status=GatewayPaymentStatus.SUCCEEDED,
        amount=amount,
        method=method,
        invoice_id=invoice_id,
    )
    return payment_record(
        principal=principal,
        reported=reported,
        invoice_id=invoice_id,
        attempt=None,
        recorded_by=recorded_by,
        exact=False,
    )


def payment_held_resolve(*, principal: Principal, payment_ids: list[uuid.UUID], user_id: int) -> int:
    """Billing staff mark held payments as dealt with (refunded at the gateway, or applied
    by hand in a later issue); audited per payment. Returns how many changed."""
    with unit_of_work(principal):
        held = list(
            Payment.objects.select_for_update(no_key=True)
            .filter(id__in=payment_ids, status=PaymentStatus.HELD, resolved_at__isnull=True)
            .order_by("pk")
        )
        now = timezone.now()
        for payment in held:
            payment.resolved_at = now
            payment.resolved_by_id = user_id
            payment.save(update_fields=["resolved_at", "resolved_by"])
            audit_record(
                action=AuditAction.PAYMENT_HELD_RESOLVED,
                principal=principal,
                object_type="invoice",
                object_id=str(payment.invoice_id),
                customer_id=payment.customer_id,
                payload=payment_summary(payment),
            )
    return len(held)
