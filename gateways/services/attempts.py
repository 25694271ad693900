"""Starting a payment: an attempt per invoice and gateway, and the gateway's session for it.

The amount comes only from the stored invoice, after its checksum is verified; the
browser says nothing but "pay this invoice with that gateway". One attempt is open per
invoice and gateway at a time (a partial unique index): a double-click, a reload or two
tabs reuse it, and since the gateway call carries the attempt's idempotency key, even two
simultaneous first clicks end at the same gateway session. The gateway is called with no
transaction open (docs/payments.md, "No HTTP under a lock").
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import audit_record
from audit.unit_of_work import unit_of_work
from gateways.base import Gateway, GatewayRequestError, GatewayUnavailableError, PaymentRequest
from gateways.errors import (
    GatewayDisabledError,
    NothingDueError,
    PaymentAttemptNotFoundError,
    PaymentBlockedError,
    PaymentGatewayRefusedError,
    PaymentGatewayUnavailableError,
)
from gateways.models import AttemptStatus, GatewayCustomer, PaymentAttempt
from gateways.registry import gateway_for
from gateways.risk import PaymentStartContext, RiskAssessment, RiskDecision, risk_assessor
from gateways.services.ledger import PAYABLE
from invoices.errors import InvoiceChecksumMismatchError
from invoices.models import Invoice
from invoices.selectors import invoice_lock
from invoices.services import invoice_checksum_verify
from paymenter.money import Money
from paymenter.principals import Principal

logger = logging.getLogger(__name__)

ReturnUrls = Callable[[uuid.UUID], tuple[str, str]]
"""Given the attempt id, the (success, cancel) URLs the gateway sends the customer back to."""

REUSE_MARGIN = timedelta(minutes=5)  # an attempt this close to expiry is not handed out again
UNANSWERED_GRACE = timedelta(minutes=10)  # an attempt the gateway never answered is retried this long


def _attempt_open(
    *, principal: Principal, invoice: Invoice, gateway: Gateway, source_ip: str
) -> tuple[PaymentAttempt | None, str, RiskAssessment | None]:
    """The open attempt to use (reused, or new), the session id of one it superseded, and
    the risk rules' assessment of a new one.

    A reused attempt (a double click, a reload) is not a new payment: the rules are asked
    only before a new attempt is created. A block returns no attempt; the caller commits
    (the assessment the rules stored, the audit record) and then refuses.
    """
    if invoice.status not in PAYABLE or invoice.amount_due_minor <= 0:
        raise NothingDueError(status=invoice.status)
    due = Money(invoice.amount_due_minor, invoice.currency)
    attempt = PaymentAttempt.objects.filter(invoice=invoice, gateway=gateway.code, status=AttemptStatus.OPEN).first()
    if attempt is not None and _reusable(attempt, due):
        return attempt, "", None
    assessment = risk_assessor().before_start(
        PaymentStartContext(
            invoice_id=invoice.id,
            customer_id=invoice.customer_id,
            gateway=gateway.code,
            amount=due,
            source_ip=source_ip,
        )
    )
    if assessment.decision is RiskDecision.BLOCK:
        audit_record(
            action=AuditAction.PAYMENT_BLOCKED,
            principal=principal,
            object_type="invoice",
            object_id=str(invoice.id),
            customer_id=invoice.customer_id,
            payload={
                "gateway": gateway.code,
                "amount_minor": due.minor,
                "currency": due.currency,
                "risk_assessment_id": str(assessment.assessment_id or ""),
                "reasons": list(assessment.reasons),
            },
        )
        return None, "", assessment
    superseded = ""
    if attempt is not None:
        attempt.status = AttemptStatus.EXPIRED
        attempt.settled_at = timezone.now()
        attempt.gateway_status = "superseded"
        attempt.save(update_fields=["status", "settled_at", "gateway_status"])
        superseded = attempt.gateway_session_id
    attempt = PaymentAttempt.objects.create(
        invoice=invoice,
        customer_id=invoice.customer_id,
        gateway=gateway.code,
        amount_minor=due.minor,
        currency=due.currency,
        expires_at=timezone.now() + timedelta(seconds=int(settings.PAYMENT_SESSION_TTL_SECONDS)),
        risk_assessment_id=assessment.assessment_id,
    )
    audit_record(
        action=AuditAction.PAYMENT_ATTEMPT_STARTED,
        principal=principal,
        object_type="invoice",
        object_id=str(invoice.id),
        customer_id=invoice.customer_id,
        payload={
            "attempt_id": str(attempt.id),
            "gateway": gateway.code,
            "amount_minor": due.minor,
            "currency": due.currency,
            "risk_assessment_id": str(assessment.assessment_id or ""),
        },
    )
    return attempt, superseded, assessment


def _reusable(attempt: PaymentAttempt, due: Money) -> bool:
    if attempt.amount_minor != due.minor or attempt.currency != due.currency:
        return False  # something was paid meanwhile: the old session asks for too much
    now = timezone.now()
    if not attempt.redirect_url:
        return attempt.created_at > now - UNANSWERED_GRACE
    return attempt.expires_at is None or attempt.expires_at > now + REUSE_MARGIN


def payment_attempt_start(
    *,
    principal: Principal,
    invoice: Invoice,
    gateway_code: str,
    return_urls: ReturnUrls,
    source_ip: str = "",
) -> PaymentAttempt:
    """Start (or reuse) the payment of ``invoice``'s amount due at ``gateway_code``.

    ``invoice`` comes from the caller's selector (the pay link's, the portal's), which
    decided that ``principal`` may pay it; it is read again here, locked, under
    ``principal``'s row-level security, and everything is taken from that row.

    Refuses a gateway that is not enabled (404), a tampered invoice (409
    ``invoice_checksum_mismatch``, recorded and alerted), an invoice with nothing due
    (409), a start the risk rules block (403), and reports a gateway that is down (503:
    nothing was charged). Returns the attempt, whose ``redirect_url`` is where to send the
    customer.
    """
    gateway = gateway_for(gateway_code)
    if not gateway.checkout_origin():  # bank transfer: paid with the reference shown, no page
        raise GatewayDisabledError(gateway_code)
    superseded_session = ""
    blocked: RiskAssessment | None = None
    with unit_of_work(principal):
        invoice = invoice_lock(invoice=invoice)
        intact = invoice_checksum_verify(principal=principal, invoice=invoice, attempted="payment_start")
        if intact:
            opened, superseded_session, assessment = _attempt_open(
                principal=principal, invoice=invoice, gateway=gateway, source_ip=source_ip
            )
            if opened is None:
                blocked = assessment  # committed (the rules' record, the audit), then refused
            elif opened.redirect_url:
                return opened
            else:
                attempt = opened
                request = _payment_request(invoice=invoice, attempt=attempt, return_urls=return_urls)
    if not intact:
        raise InvoiceChecksumMismatchError()
    if blocked is not None:
        raise PaymentBlockedError(retry_after_seconds=blocked.retry_after_seconds)
    if superseded_session:
        _session_expire_quietly(gateway_code=gateway.code, session_id=superseded_session)
    try:
        started = gateway.payment_start(request)  # no transaction open: an HTTP call
    except GatewayUnavailableError as exc:
        raise PaymentGatewayUnavailableError() from exc
    except GatewayRequestError as exc:
        raise PaymentGatewayRefusedError() from exc
    with unit_of_work(principal):
        if started.gateway_customer_id:
            GatewayCustomer.objects.get_or_create(
                customer_id=request.customer_id,
                gateway=gateway.code,
                defaults={"gateway_customer_id": started.gateway_customer_id},
            )
        PaymentAttempt.objects.filter(pk=attempt.pk, gateway_session_id="").update(
            gateway_session_id=started.session_id,
            redirect_url=started.redirect_url,
            expires_at=started.expires_at or attempt.expires_at,
        )
        attempt.refresh_from_db()
    return attempt


def _payment_request(*, invoice: Invoice, attempt: PaymentAttempt, return_urls: ReturnUrls) -> PaymentRequest:
    """What the gateway is asked for: everything from the stored (locked, verified) rows."""
    known = GatewayCustomer.objects.filter(customer_id=invoice.customer_id, gateway=attempt.gateway).first()
    customer = invoice.customer
    success_url, cancel_url = return_urls(attempt.id)
    return PaymentRequest(
        attempt_id=attempt.id,
        invoice_id=invoice.id,
        invoice_number=invoice.number or "",
        customer_id=invoice.customer_id,
        amount=Money(attempt.amount_minor, attempt.currency),
        description=f"{settings.SELLER_NAME} invoice {invoice.number}",
        success_url=success_url,
        cancel_url=cancel_url,
        idempotency_key=f"paymenter-attempt-{attempt.id}",
        expires_at=attempt.expires_at,
        gateway_customer_id=known.gateway_customer_id if known else "",
        customer_email=str(customer.email or ""),
        customer_name=str(customer.name or ""),
    )


def _session_expire_quietly(*, gateway_code: str, session_id: str) -> None:
    """Best effort: a superseded session should not stay payable. If it is paid anyway,
    the ledger records the payment ``held`` (it no longer matches what is due)."""
    try:
        gateway_for(gateway_code).session_expire(session_id=session_id)
    except (GatewayUnavailableError, GatewayRequestError):
        logger.warning("could not expire superseded %s session %s", gateway_code, session_id)


def payment_attempt_get(*, principal: Principal, invoice_id: uuid.UUID, attempt_id: uuid.UUID | str) -> PaymentAttempt:
    """An attempt of ``invoice_id``, as ``principal`` may see it (404 otherwise)."""
    with unit_of_work(principal):
        try:
            return PaymentAttempt.objects.get(id=attempt_id, invoice_id=invoice_id)
        except (PaymentAttempt.DoesNotExist, ValueError) as exc:
            raise PaymentAttemptNotFoundError() from exc
