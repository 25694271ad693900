"""Writes of an invoice's life: create, issue, void, write off.

Every amount is computed from stored data (``invoices.pricing``); each entry point runs
in one unit of work with its audit record, and records what happened as a domain event
(``invoices.events``) for the channels to act on.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import TailInsert, tail_insert, tail_name
from audit.unit_of_work import unit_of_work
from billing.models import Customer, Product, TaxTreatment
from billing.selectors import customer_get
from invoices import checksum, numbering
from invoices.errors import (
    InvalidInvoiceError,
    InvoiceChecksumMismatchError,
    InvoiceStateError,
)
from invoices.events import InvoiceEvent, invoice_event_record
from invoices.models import Invoice, InvoiceLine, InvoiceStatus
from invoices.pricing import (
    InvoiceLineInput,
    PricedInvoice,
    invoice_price,
    seller_today,
)
from invoices.selectors import invoice_get_for_update
from invoices.services.auditing import invoice_audit_record
from invoices.services.checksums import invoice_checksum_verify
from invoices.tax import KnownRate
from paymenter import rls
from paymenter.card_numbers import card_numbers_refuse
from paymenter.money import normalize_currency
from paymenter.principals import Principal
from paymenter.sql_rows import insert_sql, rows_saved


def _apply_totals(invoice: Invoice, priced: PricedInvoice) -> None:
    invoice.subtotal_minor = priced.totals.subtotal_minor
    invoice.tax_minor = priced.totals.tax_minor
    invoice.total_minor = priced.totals.total_minor


def _line_rows(invoice: Invoice, priced: PricedInvoice) -> list[InvoiceLine]:
    return [
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


def _lines_insert(lines: list[InvoiceLine]) -> TailInsert:
    """The lines' INSERT for :func:`_insert_with_lines`, built before the invoice is
    numbered: nothing in a line depends on the number, and the counter is locked from the
    number to COMMIT, so this work stays out of that section."""
    sql, params = insert_sql(InvoiceLine, lines)
    return TailInsert(name=tail_name("lines"), sql=f"{sql} RETURNING 1", params=params)


def _insert_with_lines(invoice: Invoice, lines: list[InvoiceLine], lines_insert: TailInsert) -> None:
    """Write a new invoice and its lines (``lines_insert``, from :func:`_lines_insert`) at
    the end of the unit of work, in the statement that takes the audit chain position
    (``audit.services.tail_insert``: one round trip).

    The lines go first: the invoice's INSERT waits for them (its ``WHERE`` counts them),
    so the line trigger meets an invoice that does not exist yet (migration
    ``invoices.0009``); the foreign key is checked at COMMIT, which also fails if the
    invoice row was not written.
    """
    invoice_sql, invoice_params = insert_sql(Invoice, [invoice])
    head, values = invoice_sql.split(" VALUES (", 1)
    if not (head.startswith("INSERT INTO ") and values.endswith(")")):  # Django's single-row form
        raise RuntimeError(f"unexpected INSERT form: {invoice_sql[:80]}")
    tail_insert(
        lines_insert,
        TailInsert(
            name=tail_name("invoice"),
            sql=f"{head} SELECT {values[:-1]} WHERE (SELECT count(*) FROM {lines_insert.name}) = %s",  # noqa: S608 - Django's SQL
            params=(*invoice_params, len(lines)),
        ),
    )
    rows_saved([*lines, invoice])


def _lines_attach(invoice: Invoice, lines: list[InvoiceLine]) -> None:
    """Make ``invoice.lines.all()`` answer ``lines`` without a query, as a
    ``prefetch_related("lines")`` read would: the caller serializes the invoice it just
    wrote from memory instead of reading it back (docs/performance.md)."""
    queryset = invoice.lines.all()
    queryset._result_cache = sorted(lines, key=lambda line: line.position)
    queryset._prefetch_done = True  # type: ignore[attr-defined] # Django's own prefetch state
    invoice._prefetched_objects_cache = {"lines": queryset}  # type: ignore[attr-defined] # Django's own prefetch cache


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


def _issue(*, invoice: Invoice, customer: Customer, lines: list[InvoiceLine], issue_date: dt.date) -> None:
    """Number, date, freeze and sign ``invoice`` (in memory; the caller writes it).

    The number is taken here, and its counter stays locked until COMMIT: callers get here
    only once everything that can refuse or read is behind them."""
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
    invoice.number = numbering.invoice_number_next(issue_date=issue_date)
    invoice.checksum_key_id, invoice.checksum = checksum.compute(invoice, lines)


def _issue_draft_locked(*, invoice: Invoice, customer: Customer) -> None:
    """Issue a locked draft: its lines re-priced at the rates in force on the issue date,
    then numbered and signed. Does not audit: the caller does, last."""
    issue_date = seller_today()
    priced = invoice_price(
        customer=customer, currency=invoice.currency, lines=_line_inputs(invoice), on_date=issue_date
    )
    InvoiceLine.objects.filter(invoice=invoice).delete()  # drafts only (trigger enforces)
    lines = _line_rows(invoice, priced)
    InvoiceLine.objects.bulk_create(lines)
    _apply_totals(invoice, priced)
    _issue(invoice=invoice, customer=customer, lines=lines, issue_date=issue_date)
    invoice.save()


def _record_issued(*, principal: Principal, invoice: Invoice) -> None:
    """The audit record and the domain event of an issue, written last (audit lock)."""
    invoice_event_record(event=InvoiceEvent.ISSUED, invoice=invoice)
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
    customer: Customer,
    lines: Sequence[InvoiceLineInput],
    currency: str | None = None,
    issue: bool = False,
) -> Invoice:
    """Create a draft invoice for ``customer`` (read by the caller under its principal) from
    line inputs; with ``issue=True`` it is issued at once, in the same transaction."""
    currency = normalize_currency(currency or settings.DEFAULT_CURRENCY)
    with rls.acting_as(principal):
        priced = invoice_price(customer=customer, currency=currency, lines=lines, on_date=seller_today())
    return invoice_create_priced(principal=principal, customer=customer, priced=priced, issue=issue)


def invoice_create_priced(
    *, principal: Principal, customer: Customer, priced: PricedInvoice, issue: bool = False
) -> Invoice:
    """Write an invoice :func:`invoice_price` priced (every refusal is behind the caller).

    With ``issue=True`` it is written once, already issued: numbered, dated and signed,
    the number taken after everything else is computed. The rows are written when the
    unit of work ends, with the audit chain position (``_insert_with_lines``), so nothing
    in it may read them back; ``invoice.lines`` and ``invoice.customer`` come back loaded
    and the caller answers from memory. Nothing in the unit of work refuses, so it opens
    no savepoint.
    """
    issue_date = seller_today()
    if issue and priced.on_date != issue_date:  # priced before midnight: issue at today's rates
        with rls.acting_as(principal):
            priced = invoice_price(
                customer=customer,
                currency=priced.currency,
                lines=[line.source for line in priced.lines],
                on_date=issue_date,
            )
    invoice = Invoice(customer=customer, currency=priced.currency, status=InvoiceStatus.DRAFT)
    _apply_totals(invoice, priced)
    lines = _line_rows(invoice, priced)
    with unit_of_work(principal, savepoint=False):
        lines_insert = _lines_insert(lines)  # before the number: see _lines_insert
        _lines_attach(invoice, lines)
        if issue:
            _issue(invoice=invoice, customer=customer, lines=lines, issue_date=issue_date)
        _insert_with_lines(invoice, lines, lines_insert)
        invoice_audit_record(
            action=AuditAction.INVOICE_CREATED,
            principal=principal,
            invoice=invoice,
            payload={"currency": priced.currency, "lines": len(lines), "total_minor": priced.totals.total_minor},
        )
        if issue:
            _record_issued(principal=principal, invoice=invoice)
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
    customer: Customer,
    lines: Sequence[InvoiceLineInput],
    currency: str | None = None,
    known_rate: KnownRate | None = None,
) -> InvoicePreview:
    """The same computation as issuing, as of today: no row, no number, no audit record.
    ``known_rate`` as for :func:`invoices.pricing.invoice_price`."""
    currency = normalize_currency(currency or settings.DEFAULT_CURRENCY)
    with rls.acting_as(principal):
        issue_date = seller_today()
        priced = invoice_price(
            customer=customer, currency=currency, lines=lines, on_date=issue_date, known_rate=known_rate
        )
    return InvoicePreview(
        customer=customer,
        priced=priced,
        issue_date=issue_date,
        due_date=issue_date + dt.timedelta(days=settings.INVOICE_DUE_DAYS),
    )


def invoice_issue(*, principal: Principal, invoice_id: uuid.UUID | str) -> Invoice:
    with unit_of_work(principal):
        invoice = invoice_get_for_update(principal=principal, invoice_id=invoice_id)
        if invoice.status != InvoiceStatus.DRAFT:
            raise InvoiceStateError(status=invoice.status, action="issued")
        customer = customer_get(principal=principal, customer_id=invoice.customer_id)
        _issue_draft_locked(invoice=invoice, customer=customer)
        _record_issued(principal=principal, invoice=invoice)
        return invoice


def invoice_void(*, principal: Principal, invoice_id: uuid.UUID | str, reason: str = "") -> Invoice:
    """Void an issued invoice that is open and unpaid; O2S hears of it (``invoice.voided``).

    Refused, with nothing written: a reason holding a card number (400
    ``card_number_not_allowed``) or too long (400 ``invalid_invoice``); then, with the
    invoice locked, an issued invoice whose checksum does not verify (409
    ``invoice_checksum_mismatch``, its first detection recorded and alerted: no void and
    no callback carrying tampered amounts); then any state but unpaid ``open`` (409
    ``invoice_invalid_state``). A draft cannot be voided: it was never issued, has no
    number and nobody outside knows of it. Paid invoices are refunded, not voided.
    """
    card_numbers_refuse({"reason": reason})
    if not isinstance(reason, str) or len(reason) > 500:
        raise InvalidInvoiceError({"reason": ["text of at most 500 characters"]})
    with unit_of_work(principal):
        invoice = invoice_get_for_update(principal=principal, invoice_id=invoice_id)
        intact = invoice_checksum_verify(principal=principal, invoice=invoice, attempted="void")
        if intact:
            if invoice.status != InvoiceStatus.OPEN or invoice.amount_paid_minor:
                raise InvoiceStateError(status=invoice.status, action="voided")
            invoice.status = InvoiceStatus.VOID
            invoice.voided_at = timezone.now()
            invoice.void_reason = reason.strip()
            invoice.save(update_fields=["status", "voided_at", "void_reason"])
            invoice_event_record(event=InvoiceEvent.VOIDED, invoice=invoice)
            invoice_audit_record(
                action=AuditAction.INVOICE_VOIDED,
                principal=principal,
                invoice=invoice,
                payload={"before": {"status": InvoiceStatus.OPEN.value}, "reason": invoice.void_reason},
            )
    if not intact:
        raise InvoiceChecksumMismatchError()
    return invoice


def invoice_mark_uncollectible(*, principal: Principal, invoice_id: uuid.UUID | str, reason: str) -> Invoice:
    """Write off an open invoice that will not be paid (dunning gave up). It stays owed:
    a late payment still settles it (``invoice_mark_paid``).

    Refused, with nothing written, in this order: a reason holding a card number (400
    ``card_number_not_allowed``), a blank or too long reason (400 ``invalid_invoice``), an
    issued invoice whose checksum does not verify (409 ``invoice_checksum_mismatch``; its
    first detection recorded and alerted), any state but ``open`` (409
    ``invoice_invalid_state``).
    """
    card_numbers_refuse({"reason": reason})
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
        raise InvalidInvoiceError({"reason": ["required, at most 500 characters"]})
    with unit_of_work(principal):
        invoice = invoice_get_for_update(principal=principal, invoice_id=invoice_id)
        intact = invoice_checksum_verify(principal=principal, invoice=invoice, attempted="mark_uncollectible")
        if intact:
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
    if not intact:
        raise InvoiceChecksumMismatchError()
    return invoice
