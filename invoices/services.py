"""Writes of invoices: create, issue, void, record payment.

Every amount is computed here from stored data (customer, tax rates, line inputs);
totals, tax and status are never taken from a caller. Each entry point runs in one
durable transaction with its audit record.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import audit_record
from billing.callbacks import CallbackEventType, o2s_callback_record
from billing.models import Customer, Product, TaxTreatment
from billing.selectors import customer_get
from invoices import checksum, numbering, tax
from invoices.errors import (
    InvalidInvoiceError,
    InvoiceChecksumMismatchError,
    InvoiceNotFoundError,
    InvoiceStateError,
    PaymentAmountMismatchError,
)
from invoices.models import Invoice, InvoiceLine, InvoiceStatus, TaxCode, TaxRate
from invoices.selectors import invoice_get, invoices_for_principal
from paymenter import rls
from paymenter.money import MAX_MINOR, CurrencyMismatchError, Money, normalize_currency
from paymenter.principals import Principal

MAX_LINES = 200
MAX_QUANTITY = 1_000_000
MAX_DESCRIPTION = 500


@dataclass(frozen=True)
class InvoiceLineInput:
    """What a caller may say about a line: never its tax or totals.

    ``product_code`` names the catalogue product the line bills (stored on the line);
    ``tax_treatment`` is the product's treatment: ``gst_free`` makes the line GST-free
    whoever the buyer is, ``standard`` (or ``None``) follows the buyer's country.
    """

    description: str
    quantity: int
    unit_amount_minor: int
    currency: str | None = None
    period_start: dt.date | None = None
    period_end: dt.date | None = None
    product_code: str | None = None
    tax_treatment: TaxTreatment | None = None


@dataclass(frozen=True)
class PricedLine:
    position: int
    source: InvoiceLineInput
    tax_code: str
    tax_rate: Any
    amounts: tax.LineAmounts


@dataclass(frozen=True)
class PricedInvoice:
    currency: str
    tax_code: str
    lines: tuple[PricedLine, ...]
    totals: tax.LineAmounts
    on_date: dt.date = field(compare=False)


def seller_today() -> dt.date:
    """Invoice dates are calendar dates in the seller's time zone."""
    return timezone.now().astimezone(zoneinfo.ZoneInfo(settings.SELLER_TIME_ZONE)).date()


def _validate_lines(lines: Sequence[InvoiceLineInput], currency: str) -> None:
    errors: dict[str, list[str]] = {}
    if not lines:
        errors["lines"] = ["an invoice needs at least one line"]
    elif len(lines) > MAX_LINES:
        errors["lines"] = [f"at most {MAX_LINES} lines"]
    for index, line in enumerate(lines[:MAX_LINES]):
        prefix = f"lines[{index}]"
        if not isinstance(line.description, str) or not line.description.strip():
            errors[f"{prefix}.description"] = ["required"]
        elif len(line.description) > MAX_DESCRIPTION:
            errors[f"{prefix}.description"] = [f"at most {MAX_DESCRIPTION} characters"]
        if (
            isinstance(line.quantity, bool)
            or not isinstance(line.quantity, int)
            or not (1 <= line.quantity <= MAX_QUANTITY)
        ):
            errors[f"{prefix}.quantity"] = [f"a whole number from 1 to {MAX_QUANTITY}"]
        if (
            isinstance(line.unit_amount_minor, bool)
            or not isinstance(line.unit_amount_minor, int)
            or not (0 <= line.unit_amount_minor <= MAX_MINOR)
        ):
            errors[f"{prefix}.unit_amount_minor"] = ["a whole number of minor units, not negative"]
        if line.currency is not None and str(line.currency).upper() != currency:
            raise CurrencyMismatchError(currency, str(line.currency))
        if line.period_start and line.period_end and line.period_end < line.period_start:
            errors[f"{prefix}.period_end"] = ["must not be before period_start"]
    if errors:
        raise InvalidInvoiceError(errors)


def invoice_price(
    *, customer: Customer, currency: str, lines: Sequence[InvoiceLineInput], on_date: dt.date
) -> PricedInvoice:
    """The full computation without writing anything (used for drafts, issue, preview)."""
    currency = normalize_currency(currency)
    _validate_lines(lines, currency)
    treatment = tax.treatment_for(
        buyer_country=customer.billing_country, seller_country=settings.SELLER_COUNTRY, on=on_date
    )
    gst_free = _gst_free_treatment(buyer_country=customer.billing_country)
    priced: tuple[PricedLine, ...] = ()
    for index, line in enumerate(lines):
        line_treatment = gst_free if line.tax_treatment == TaxTreatment.GST_FREE else treatment
        priced += (
            PricedLine(
                position=index + 1,
                source=line,
                tax_code=line_treatment.code,
                tax_rate=line_treatment.rate,
                amounts=tax.line_amounts(
                    quantity=line.quantity, unit_amount_minor=line.unit_amount_minor, rate=line_treatment.rate
                ),
            ),
        )
    totals = tax.invoice_amounts([line.amounts for line in priced])
    if totals.total_minor > MAX_MINOR:
        raise InvalidInvoiceError({"lines": ["the invoice total is out of the supported range"]})
    return PricedInvoice(currency=currency, tax_code=treatment.code, lines=priced, totals=totals, on_date=on_date)


def _gst_free_treatment(*, buyer_country: str) -> tax.TaxTreatment:
    """A GST-free product: a GST-free supply at home, a GST-free export abroad; zero-rated."""
    code = TaxCode.GST_FREE if buyer_country == settings.SELLER_COUNTRY == "AU" else TaxCode.GST_FREE_EXPORT
    return tax.TaxTreatment(code=code, rate=tax.ZERO_RATE)


def _lock_invoice(*, principal: Principal, invoice_id: uuid.UUID | str) -> Invoice:
    visible = invoice_get(principal=principal, invoice_id=invoice_id)
    return Invoice.objects.select_for_update(no_key=True).get(pk=visible.pk)


def invoice_audit_record(
    *, action: AuditAction, principal: Principal, invoice: Invoice, payload: dict[str, Any]
) -> None:
    """Audit an invoice event. Services call it as late as they can: the audit chain-head
    lock it takes is held until commit and serializes every audited write
    (docs/performance.md)."""
    audit_record(
        action=action,
        principal=principal,
        object_type="invoice",
        object_id=str(invoice.id),
        customer_id=invoice.customer_id,
        payload={"number": invoice.number, **payload},
    )


def _apply_totals(invoice: Invoice, priced: PricedInvoice) -> None:
    invoice.subtotal_minor = priced.totals.subtotal_minor
    invoice.tax_minor = priced.totals.tax_minor
    invoice.total_minor = priced.totals.total_minor


def _write_lines(invoice: Invoice, priced: PricedInvoice, *, replace: bool) -> list[InvoiceLine]:
    if replace:
        InvoiceLine.objects.filter(invoice=invoice).delete()  # drafts only (trigger enforces)
    rows = [
        InvoiceLine(
            invoice=invoice,
            customer_id=invoice.customer_id,
            position=line.position,
            description=line.source.description.strip(),
            product_code=line.source.product_code or "",
            quantity=line.source.quantity,
            unit_amount_minor=line.source.unit_amount_minor,
            tax_code=line.tax_code,
            tax_rate=line.tax_rate,
            subtotal_minor=line.amounts.subtotal_minor,
            tax_minor=line.amounts.tax_minor,
            total_minor=line.amounts.total_minor,
            period_start=line.source.period_start,
            period_end=line.source.period_end,
        )
        for line in priced.lines
    ]
    InvoiceLine.objects.bulk_create(rows)
    return rows


def _line_inputs(invoice: Invoice) -> list[InvoiceLineInput]:
    """A draft's lines as inputs again; a product line keeps its catalogue tax treatment."""
    stored = list(InvoiceLine.objects.filter(invoice=invoice).order_by("position"))
    codes = {line.product_code for line in stored if line.product_code}
    treatments = dict(Product.objects.filter(code__in=codes).values_list("code", "tax_treatment")) if codes else {}
    return [
        InvoiceLineInput(
            description=line.description,
            quantity=line.quantity,
            unit_amount_minor=line.unit_amount_minor,
            period_start=line.period_start,
            period_end=line.period_end,
            product_code=line.product_code or None,
            tax_treatment=TaxTreatment(treatments[line.product_code]) if line.product_code in treatments else None,
        )
        for line in stored
    ]


def _issue_locked(
    *, invoice: Invoice, customer: Customer, priced_lines: tuple[dt.date, list[InvoiceLine]] | None = None
) -> Invoice:
    """Number, date, freeze and sign a locked draft. Its lines are re-priced at the rates
    in force on the issue date unless ``priced_lines`` were priced on that very date.
    Does not audit: the caller does, last."""
    issue_date = seller_today()
    if priced_lines is not None and priced_lines[0] == issue_date:
        lines = priced_lines[1]
    else:
        priced = invoice_price(
            customer=customer, currency=invoice.currency, lines=_line_inputs(invoice), on_date=issue_date
        )
        lines = _write_lines(invoice, priced, replace=True)
        _apply_totals(invoice, priced)
    invoice.number = numbering.invoice_number_next(issue_date=issue_date)
    invoice.issue_date = issue_date
    invoice.due_date = issue_date + dt.timedelta(days=settings.INVOICE_DUE_DAYS)
    invoice.is_tax_invoice = True
    invoice.seller_details = {
        "name": settings.SELLER_NAME,
        "abn": settings.SELLER_ABN,
        "address": settings.SELLER_ADDRESS,
        "country": settings.SELLER_COUNTRY,
    }
    invoice.buyer_details = {
        "external_id": customer.external_id,
        "name": customer.name,
        "email": customer.email,
        "tax_id": customer.tax_id,
        "postal_address": customer.postal_address,
    }
    invoice.buyer_country = customer.billing_country
    invoice.status = InvoiceStatus.OPEN
    invoice.issued_at = timezone.now()
    invoice.checksum_key_id, invoice.checksum = checksum.compute(invoice, lines)
    invoice.save()
    return invoice


def _audit_issued(*, principal: Principal, invoice: Invoice) -> None:
    invoice_audit_record(
        action=AuditAction.INVOICE_ISSUED,
        principal=principal,
        invoice=invoice,
        payload={
            "currency": invoice.currency,
            "subtotal_minor": invoice.subtotal_minor,
            "tax_minor": invoice.tax_minor,
            "total_minor": invoice.total_minor,
            "checksum_key_id": invoice.checksum_key_id,
        },
    )


def invoice_create(
    *,
    principal: Principal,
    customer_id: uuid.UUID | str,
    lines: Sequence[InvoiceLineInput],
    currency: str | None = None,
    issue: bool = False,
) -> Invoice:
    """Create a draft invoice from line inputs; with ``issue=True`` also issue it, in
    the same transaction."""
    currency = normalize_currency(currency or settings.DEFAULT_CURRENCY)
    with rls.unit_of_work(principal):
        customer = customer_get(principal=principal, customer_id=customer_id)
        priced_on = seller_today()
        priced = invoice_price(customer=customer, currency=currency, lines=lines, on_date=priced_on)
        invoice = Invoice(customer=customer, currency=currency, status=InvoiceStatus.DRAFT)
        _apply_totals(invoice, priced)
        invoice.save(force_insert=True)
        rows = _write_lines(invoice, priced, replace=False)
        if issue:
            _issue_locked(invoice=invoice, customer=customer, priced_lines=(priced_on, rows))
        invoice_audit_record(
            action=AuditAction.INVOICE_CREATED,
            principal=principal,
            invoice=invoice,
            payload={"currency": currency, "lines": len(priced.lines), "total_minor": priced.totals.total_minor},
        )
        if issue:
            _audit_issued(principal=principal, invoice=invoice)
    return invoice


@dataclass(frozen=True)
class InvoicePreview:
    """What ``invoice_create(..., issue=True)`` would produce today; nothing is stored."""

    customer: Customer
    priced: PricedInvoice
    issue_date: dt.date
    due_date: dt.date


def invoice_preview(
    *,
    principal: Principal,
    customer_id: uuid.UUID | str,
    lines: Sequence[InvoiceLineInput],
    currency: str | None = None,
) -> InvoicePreview:
    """The same computation as issuing, as of today: no row, no number, no audit record."""
    currency = normalize_currency(currency or settings.DEFAULT_CURRENCY)
    with rls.acting_as(principal):
        customer = customer_get(principal=principal, customer_id=customer_id)
        issue_date = seller_today()
        priced = invoice_price(customer=customer, currency=currency, lines=lines, on_date=issue_date)
    return InvoicePreview(
        customer=customer,
        priced=priced,
        issue_date=issue_date,
        due_date=issue_date + dt.timedelta(days=settings.INVOICE_DUE_DAYS),
    )


def invoice_issue(*, principal: Principal, invoice_id: uuid.UUID | str) -> Invoice:
    with rls.unit_of_work(principal):
        invoice = _lock_invoice(principal=principal, invoice_id=invoice_id)
        if invoice.status != InvoiceStatus.DRAFT:
            raise InvoiceStateError(status=invoice.status, action="issued")
        customer = customer_get(principal=principal, customer_id=invoice.customer_id)
        _issue_locked(invoice=invoice, customer=customer)
        _audit_issued(principal=principal, invoice=invoice)
        return invoice


def invoice_void(*, principal: Principal, invoice_id: uuid.UUID | str, reason: str = "") -> Invoice:
    """Void a draft or an unpaid open invoice. Paid invoices are refunded, not voided."""
    if not isinstance(reason, str) or len(reason) > 500:
        raise InvalidInvoiceError({"reason": ["text of at most 500 characters"]})
    with rls.unit_of_work(principal):
        invoice = _lock_invoice(principal=principal, invoice_id=invoice_id)
        if invoice.status not in (InvoiceStatus.DRAFT, InvoiceStatus.OPEN) or invoice.amount_paid_minor:
            raise InvoiceStateError(status=invoice.status, action="voided")
        previous = invoice.status
        invoice.status = InvoiceStatus.VOID
        invoice.voided_at = timezone.now()
        invoice.void_reason = reason.strip()
        invoice.save(update_fields=["status", "voided_at", "void_reason"])
        if previous == InvoiceStatus.OPEN:  # O2S never heard of drafts
            o2s_callback_record(event_type=CallbackEventType.INVOICE_VOIDED, invoice=invoice)
        invoice_audit_record(
            action=AuditAction.INVOICE_VOIDED,
            principal=principal,
            invoice=invoice,
            payload={"before": {"status": previous}, "reason": invoice.void_reason},
        )
    return invoice


def invoice_mark_uncollectible(*, principal: Principal, invoice_id: uuid.UUID | str, reason: str) -> Invoice:
    """Write off an open invoice that will not be paid (dunning gave up). It stays owed:
    a late payment still settles it (``invoice_mark_paid``)."""
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
        raise InvalidInvoiceError({"reason": ["required, at most 500 characters"]})
    with rls.unit_of_work(principal):
        invoice = _lock_invoice(principal=principal, invoice_id=invoice_id)
        if invoice.status != InvoiceStatus.OPEN:
            raise InvoiceStateError(status=invoice.status, action="marked uncollectible")
        invoice.status = InvoiceStatus.UNCOLLECTIBLE
        invoice.save(update_fields=["status"])
        invoice_audit_record(
            action=AuditAction.INVOICE_MARKED_UNCOLLECTIBLE,
            principal=principal,
            invoice=invoice,
            payload={"amount_due_minor": invoice.amount_due_minor, "reason": reason.strip()},
        )
    return invoice


def _audit_checksum_mismatch(*, principal: Principal, invoice: Invoice, attempted: str) -> None:
    invoice_audit_record(
        action=AuditAction.INVOICE_CHECKSUM_MISMATCH,
        principal=principal,
        invoice=invoice,
        payload={"attempted": attempted, "checksum_key_id": invoice.checksum_key_id},
    )


def invoice_require_intact(*, principal: Principal, invoice_id: uuid.UUID | str, attempted: str) -> Invoice:
    """Verify the checksum before an action such as starting a payment.

    On a mismatch the refusal is audited (and committed) and the action refused.
    """
    with rls.unit_of_work(principal):
        invoice = invoice_get(principal=principal, invoice_id=invoice_id)
        intact = invoice.status == InvoiceStatus.DRAFT or checksum.is_valid(invoice)
        if not intact:
            _audit_checksum_mismatch(principal=principal, invoice=invoice, attempted=attempted)
    if not intact:
        raise InvoiceChecksumMismatchError()
    return invoice


def invoice_mark_paid(
    *, principal: Principal, invoice_id: uuid.UUID | str, amount: Money, payment_reference: str
) -> Invoice:
    """Record full payment of an open (or uncollectible) invoice.

    Refused (nothing changes) when the amount or currency differs from what is due, or
    when the invoice's checksum does not verify (that refusal is itself audited).
    """
    if not isinstance(amount, Money):
        raise TypeError("amount must be Money")
    if not payment_reference or len(payment_reference) > 255:
        raise InvalidInvoiceError({"payment_reference": ["required, at most 255 characters"]})
    with rls.unit_of_work(principal):
        invoice = _lock_invoice(principal=principal, invoice_id=invoice_id)
        if invoice.status not in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE):
            raise InvoiceStateError(status=invoice.status, action="paid")
        intact = checksum.is_valid(invoice)
        if not intact:
            _audit_checksum_mismatch(principal=principal, invoice=invoice, attempted="mark_paid")
        else:
            due = Money(invoice.amount_due_minor, invoice.currency)
            if amount.currency != due.currency or amount.minor != due.minor:
                raise PaymentAmountMismatchError(expected=due.format(), received=amount.format())
            invoice.amount_paid_minor += amount.minor
            invoice.status = InvoiceStatus.PAID
            invoice.paid_at = timezone.now()
            invoice.save(update_fields=["amount_paid_minor", "status", "paid_at"])
            o2s_callback_record(event_type=CallbackEventType.INVOICE_PAID, invoice=invoice)
            invoice_audit_record(
                action=AuditAction.INVOICE_PAID,
                principal=principal,
                invoice=invoice,
                payload={
                    "amount_minor": amount.minor,
                    "currency": amount.currency,
                    "payment_reference": payment_reference,
                },
            )
    if not intact:
        raise InvoiceChecksumMismatchError()
    return invoice


def tax_rate_create(
    *,
    principal: Principal,
    code: str,
    country: str,
    rate: Decimal,
    effective_from: dt.date,
    effective_to: dt.date | None = None,
    description: str = "",
) -> TaxRate:
    """Add an effective-dated rate (rates are never edited: a new row supersedes).

    Audited: a rate decides what every later invoice charges."""
    with rls.unit_of_work(principal):
        tax_rate = TaxRate.objects.create(
            code=code,
            country=country,
            rate=rate,
            effective_from=effective_from,
            effective_to=effective_to,
            description=description,
        )
        audit_record(
            action=AuditAction.TAX_RATE_CREATED,
            principal=principal,
            object_type="tax_rate",
            object_id=str(tax_rate.pk),
            payload={
                "code": code,
                "country": country,
                "rate": f"{rate:.4f}",
                "effective_from": effective_from.isoformat(),
                "effective_to": effective_to.isoformat() if effective_to else None,
            },
        )
    return tax_rate


@dataclass(frozen=True)
class ChecksumReport:
    checked: int
    mismatches: tuple[tuple[str, str], ...]  # (invoice id, number)


def invoices_verify_checksums(*, principal: Principal, batch_size: int = 500) -> ChecksumReport:
    """Check every issued invoice; each mismatch is audited (committed per batch)."""
    checked = 0
    mismatches: list[tuple[str, str]] = []
    last_id: uuid.UUID | None = None
    while True:
        with rls.unit_of_work(principal):
            batch = invoices_for_principal(principal=principal).exclude(status=InvoiceStatus.DRAFT)
            if last_id is not None:
                batch = batch.filter(id__gt=last_id)
            invoices = list(batch.order_by("id").prefetch_related("lines")[:batch_size])
            for invoice in invoices:
                checked += 1
                if not checksum.is_valid(invoice, list(invoice.lines.all())):
                    mismatches.append((str(invoice.id), invoice.number or ""))
                    _audit_checksum_mismatch(principal=principal, invoice=invoice, attempted="verify")
        if len(invoices) < batch_size:
            return ChecksumReport(checked=checked, mismatches=tuple(mismatches))
        last_id = invoices[-1].id


__all__ = [
    "InvoiceLineInput",
    "InvoiceNotFoundError",
    "InvoicePreview",
    "invoice_create",
    "invoice_issue",
    "invoice_mark_paid",
    "invoice_mark_uncollectible",
    "invoice_preview",
    "invoice_price",
    "invoice_require_intact",
    "invoice_void",
    "invoices_verify_checksums",
]
