"""Bank transfers into the ledger: recorded by staff, or matched from an imported statement.

Both paths end in the one ledger path, ``gateways.services.ledger.payment_receive`` (amount
and currency checks, partial payments, held overpayments, audit, domain event, O2S
callback, receipt), and both keep a :class:`~gateways.models.BankStatementLine` per
transfer, so that one transfer is never recorded twice:

* **By hand** (:func:`bank_transfer_record`): the transfer is identified by its date,
  amount and bank reference. Its payment's transaction id derives from them
  (``bank-manual:<sha256>``), so recording the same transfer again - or concurrently -
  finds the first and records nothing.
* **From a statement** (:func:`bank_statement_import`): each credit line is stored once
  by its fingerprint (``gateways.bank_transfer.statements``) and its payment's transaction
  id derives from it (``bank-stmt:<fingerprint>``): the same statement imported twice
  stores and records nothing new.
* **Across the two**: a statement line that matches an invoice for which a transfer of
  the same amount was recorded by hand within :data:`DUPLICATE_WINDOW_DAYS` days (or taken
  from another statement on the same day) is *flagged* (``duplicate``), not recorded:
  it is most likely the transfer staff already recorded, and only a person can tell.
  Likewise recording by hand is refused when such a transfer exists, unless staff
  confirm it is a different one.

Every service is an entry point: one unit of work (transaction, principal, audit batch),
refusals before any write. When the ledger refuses a tampered invoice, what it recorded
about the tampering (and its audit event) is committed, and nothing else.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import audit_record
from audit.unit_of_work import unit_of_work
from gateways.bank_transfer.errors import (
    BankStatementLineNotFoundError,
    BankStatementLineNotOpenError,
    BankTransferAlreadyRecordedError,
    BankTransferInvalidError,
    BankTransferPossibleDuplicateError,
    PaymentReferenceInvalidError,
    PaymentReferenceMistypedError,
    PaymentReferenceUnknownInvoiceError,
)
from gateways.bank_transfer.references import (
    FoundReference,
    ReferenceStatus,
    ScanOutcome,
    reference_parse,
    references_find,
)
from gateways.bank_transfer.statements import BANK_REFERENCE_MAX_LENGTH, StatementLine, normalise, statement_parse
from gateways.base import GatewayCode, PaymentMethod
from gateways.models import (
    BANK_LINE_OPEN_STATUSES,
    BankStatementImport,
    BankStatementLine,
    BankStatementLineStatus,
    Payment,
)
from gateways.services.ledger import Settlement, payment_receive
from invoices.errors import InvoiceChecksumMismatchError
from invoices.models import Invoice
from paymenter.card_numbers import card_numbers_refuse
from paymenter.money import Money
from paymenter.principals import Principal

DUPLICATE_WINDOW_DAYS = 7
"""How far apart the date staff typed and the statement's date may be for the two to be
taken as possibly the same transfer (weekends, holidays, a typo in the day)."""
MANUAL_TRANSACTION_PREFIX = "bank-manual:"
STATEMENT_TRANSACTION_PREFIX = "bank-stmt:"
RECORDED_STATUSES = (
    BankStatementLineStatus.MATCHED,
    BankStatementLineStatus.RESOLVED,
    BankStatementLineStatus.RECORDED,
)
"""Lines that became a payment."""

_SCAN_STATUS: Mapping[ScanOutcome, BankStatementLineStatus] = {
    ScanOutcome.NONE: BankStatementLineStatus.UNMATCHED,
    ScanOutcome.MISTYPED: BankStatementLineStatus.MISTYPED,
    ScanOutcome.AMBIGUOUS: BankStatementLineStatus.AMBIGUOUS,
}
_SCAN_NOTE: Mapping[ScanOutcome, str] = {
    ScanOutcome.NONE: "No payment reference in the bank's description.",
    ScanOutcome.MISTYPED: "The payment reference fails its check digits: the payer mistyped it.",
    ScanOutcome.AMBIGUOUS: "More than one payment reference: which invoice is paid?",
}


@dataclass(frozen=True)
class ImportReport:
    """What one statement import did."""

    statement_id: uuid.UUID
    layout: str
    lines_total: int
    """Credit lines in the file."""
    lines_new: int
    """Of them, not stored by an earlier import: stored now."""
    lines_matched: int
    """Of the new ones, recorded as payments on their own."""
    debits_skipped: int
    statuses: Mapping[str, int] = field(default_factory=dict)
    """Status -> count, over the new lines."""

    @property
    def lines_already_imported(self) -> int:
        return self.lines_total - self.lines_new

    @property
    def lines_for_staff(self) -> int:
        return self.lines_new - self.lines_matched


def bank_transfer_fingerprint(*, received_on: date, amount: Money, bank_reference: str) -> str:
    """The identity of a transfer recorded by hand: its date, amount and bank reference."""
    parts = ["manual", received_on.isoformat(), str(amount.minor), amount.currency, normalise(bank_reference)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _invoice_numbered(number: str) -> Invoice | None:
    """The invoice with that number, as the acting principal may see it (staff: any)."""
    return Invoice.objects.filter(number=number).first() if number else None


def _invoice_for_reference(payment_reference: str) -> tuple[FoundReference, Invoice]:
    found = reference_parse(payment_reference)
    if found is None:
        raise PaymentReferenceInvalidError(payment_reference)
    if found.status is ReferenceStatus.MISTYPED:
        raise PaymentReferenceMistypedError(found.printed)
    invoice = _invoice_numbered(found.invoice_number)
    if invoice is None:
        raise PaymentReferenceUnknownInvoiceError(found.printed, found.invoice_number)
    return found, invoice


def _invoice_for_staff_input(text: str) -> Invoice:
    """An invoice named by its number (``INV-2026-000034``) or by its payment reference."""
    text = text.strip()
    if reference_parse(text) is not None:
        return _invoice_for_reference(text)[1]
    invoice = _invoice_numbered(text.upper())
    if invoice is None:
        raise BankTransferInvalidError(field="invoice", message=f"No invoice is numbered {text[:40]!r}.")
    return invoice


def _similar_recorded(
    *, invoice: Invoice, amount: Money, booked_on: date, statement: BankStatementImport | None = None
) -> BankStatementLine | None:
    """A transfer already recorded for ``invoice`` that this one may well be: the same
    amount, recorded by hand within the window, or taken from another statement on the
    same day (another export of the same account)."""
    window = timedelta(days=DUPLICATE_WINDOW_DAYS)
    same_transfer = Q(statement__isnull=True, booked_on__range=(booked_on - window, booked_on + window)) | Q(
        statement__isnull=False, booked_on=booked_on
    )
    candidates = BankStatementLine.objects.filter(
        same_transfer,
        invoice=invoice,
        amount_minor=amount.minor,
        currency=amount.currency,
        status__in=RECORDED_STATUSES,
        payment__isnull=False,
    )
    if statement is not None:
        candidates = candidates.exclude(statement=statement)
    return candidates.order_by("booked_on", "id").first()


def _recorded_as(line: BankStatementLine) -> str:
    if line.statement_id is None:
        return f"by hand, bank reference {line.bank_reference!r}"
    return "from an earlier bank statement"


def _line_summary(line: BankStatementLine) -> dict[str, Any]:
    """A line as audit records describe it: never the payer's narrative (personal data)."""
    return {
        "line_id": str(line.id),
        "statement_id": str(line.statement_id) if line.statement_id else None,
        "booked_on": line.booked_on.isoformat(),
        "amount_minor": line.amount_minor,
        "currency": line.currency,
        "bank_reference": line.bank_reference,
        "payment_reference": line.payment_reference,
        "status": line.status,
    }


def bank_transfer_record(
    *,
    principal: Principal,
    payment_reference: str,
    amount: Money,
    received_on: date,
    bank_reference: str,
    user_id: int,
    confirm_distinct: bool = False,
) -> Settlement:
    """Billing staff record a transfer that arrived in the bank account.

    ``payment_reference`` names the invoice (a mistyped or unknown one is refused, naming
    the problem); ``bank_reference`` is the bank's identifier of the transfer. Refused,
    with nothing written: the same transfer (date, amount, bank reference) recorded
    before, and - unless ``confirm_distinct`` - a transfer of the same amount for the same
    invoice recorded within :data:`DUPLICATE_WINDOW_DAYS` days. Otherwise the ledger
    records the payment (applied, partial, or held for staff) and this records the
    transfer and audits who recorded it.
    """
    card_numbers_refuse({"bank_reference": bank_reference})
    bank_reference = " ".join(bank_reference.split())
    if not bank_reference or len(bank_reference) > BANK_REFERENCE_MAX_LENGTH:
        raise BankTransferInvalidError(
            field="bank_reference", message="The bank's reference of the transfer is required (at most 255 characters)."
        )
    if amount.minor <= 0:
        raise BankTransferInvalidError(field="amount", message="A transfer is of more than nothing.")
    fingerprint = bank_transfer_fingerprint(received_on=received_on, amount=amount, bank_reference=bank_reference)
    mismatch = False
    with unit_of_work(principal):
        found, invoice = _invoice_for_reference(payment_reference)
        recorded = BankStatementLine.objects.filter(fingerprint=fingerprint).select_related("invoice").first()
        if recorded is not None:
            raise BankTransferAlreadyRecordedError(invoice_number=str(recorded.invoice))
        similar = None if confirm_distinct else _similar_recorded(invoice=invoice, amount=amount, booked_on=received_on)
        if similar is not None:
            raise BankTransferPossibleDuplicateError(
                invoice_number=str(invoice), booked_on=similar.booked_on.isoformat(), recorded_as=_recorded_as(similar)
            )
        settlement: Settlement | None = None
        try:
            # a concurrent record of the same transfer loses at the unique constraint, in
            # this savepoint; the tampering refusal is caught inside it, so that what the
            # ledger recorded about the tampering (row and audit event) is kept together
            with transaction.atomic():
                try:
                    settlement = payment_receive(
                        principal=principal,
                        invoice_id=invoice.id,
                        amount=amount,
                        gateway=GatewayCode.BANK_TRANSFER,
                        transaction_id=MANUAL_TRANSACTION_PREFIX + fingerprint,
                        method=PaymentMethod.BANK_TRANSFER,
                        recorded_by=f"bank_transfer:staff:{user_id}",
                    )
                except InvoiceChecksumMismatchError:
                    mismatch = True  # commit the ledger's record of it; record nothing
        except IntegrityError:
            raise BankTransferAlreadyRecordedError(invoice_number=str(invoice)) from None
        if settlement is not None:
            if not settlement.created or settlement.payment is None:
                raise BankTransferAlreadyRecordedError(invoice_number=str(invoice))
            line = BankStatementLine.objects.create(
                statement=None,
                fingerprint=fingerprint,
                booked_on=received_on,
                amount_minor=amount.minor,
                currency=amount.currency,
                description="",
                bank_reference=bank_reference,
                payment_reference=found.reference,
                status=BankStatementLineStatus.RECORDED,
                invoice=invoice,
                payment=settlement.payment,
                resolved_by_id=user_id,
                resolved_at=timezone.now(),
                note="Recorded by staff." + (" Confirmed as distinct from a similar transfer." if similar else ""),
            )
            audit_record(
                action=AuditAction.BANK_TRANSFER_RECORDED,
                principal=principal,
                object_type="invoice",
                object_id=str(invoice.id),
                customer_id=invoice.customer_id,
                payload={
                    **_line_summary(line),
                    "invoice_number": invoice.number,
                    "payment_id": str(settlement.payment.id),
                    "payment_status": settlement.payment.status,
                    "confirm_distinct": confirm_distinct,
                },
            )
    if mismatch or settlement is None:
        raise InvoiceChecksumMismatchError()
    return settlement


def _statement_line(statement: BankStatementImport, line: StatementLine) -> tuple[BankStatementLine, str]:
    """The line to store, and the invoice number its one valid reference names ("" for
    none). A line with such a reference is ``matched`` until the invoice is looked up."""
    scan = references_find(line.description)
    reference = scan.reference
    status = _SCAN_STATUS.get(scan.outcome, BankStatementLineStatus.MATCHED)
    number = reference.invoice_number if reference and scan.outcome is ScanOutcome.VALID else ""
    stored = BankStatementLine(
        statement=statement,
        fingerprint=line.fingerprint,
        booked_on=line.booked_on,
        amount_minor=line.amount.minor,
        currency=line.amount.currency,
        description=line.description,
        bank_reference=line.bank_reference,
        payment_reference=reference.reference[:64] if reference else "",
        status=status,
        note=_SCAN_NOTE.get(scan.outcome, ""),
    )
    return stored, number


def _statement_line_match(
    *,
    principal: Principal,
    statement: BankStatementImport,
    line: BankStatementLine,
    invoice_number: str,
    invoice: Invoice | None,
) -> None:
    """Record the payment of a line whose reference is valid, or flag it for staff."""
    amount = Money(line.amount_minor, line.currency)
    if invoice is None:
        line.status = BankStatementLineStatus.UNKNOWN_INVOICE
        line.note = f"The reference names invoice {invoice_number}, which does not exist here."
    elif (
        similar := _similar_recorded(invoice=invoice, amount=amount, booked_on=line.booked_on, statement=statement)
    ) is not None:
        line.status = BankStatementLineStatus.DUPLICATE
        line.invoice = invoice
        line.note = (
            f"A transfer of the same amount for {invoice.number} was recorded {_recorded_as(similar)} "
            f"({similar.booked_on.isoformat()}): probably this one. Nothing was recorded."
        )
    else:
        line.invoice = invoice
        try:
            settlement = payment_receive(
                principal=principal,
                invoice_id=invoice.id,
                amount=amount,
                gateway=GatewayCode.BANK_TRANSFER,
                transaction_id=STATEMENT_TRANSACTION_PREFIX + line.fingerprint,
                method=PaymentMethod.BANK_TRANSFER,
                recorded_by=f"bank_statement:{statement.id}",
            )
        except InvoiceChecksumMismatchError:
            line.status = BankStatementLineStatus.UNMATCHED
            line.note = (
                f"Invoice {invoice.number} failed its integrity check (staff were alerted). Nothing was recorded."
            )
        else:
            line.payment = settlement.payment
            if settlement.payment is not None and settlement.payment.held_reason:
                line.note = f"Recorded, held for staff: {settlement.payment.get_held_reason_display()}."
    line.save(update_fields=["status", "invoice", "payment", "note"])


def bank_statement_import(
    *, principal: Principal, file_name: str, content: bytes, layout: str, user_id: int
) -> ImportReport:
    """Import a bank statement file: store its credit lines once, record the payments of
    the lines whose reference names an invoice, and leave the rest for staff.

    The file is read completely first (``statements.statement_parse``): a file that is too
    large, not CSV, or not in the layout is refused with nothing written. Then one unit of
    work stores the import, the lines no earlier import stored (insert-on-conflict on the
    fingerprint: a concurrent import of the same file waits, then stores nothing), and
    records each matched line's payment through the ledger.
    """
    parsed = statement_parse(content=content, layout=layout)
    with unit_of_work(principal):
        statement = BankStatementImport.objects.create(
            file_name=file_name[:255],
            file_sha256=parsed.sha256,
            layout=parsed.layout.value,
            imported_by_id=user_id,
            lines_total=len(parsed.lines),
            debits_skipped=parsed.debits_skipped,
        )
        candidates = [_statement_line(statement, line) for line in parsed.lines]
        BankStatementLine.objects.bulk_create([line for line, _ in candidates], ignore_conflicts=True)
        stored = set(BankStatementLine.objects.filter(statement=statement).values_list("id", flat=True))
        new_lines = [line for line, _ in candidates if line.id in stored]
        to_match = [(line, number) for line, number in candidates if line.id in stored and number]
        numbers = {number for _, number in to_match}
        invoices = {str(invoice.number): invoice for invoice in Invoice.objects.filter(number__in=numbers)}
        # the ledger locks each line's invoice: take them in primary-key order, so that two
        # imports paying the same invoices never wait for each other in a circle
        to_match.sort(key=lambda pair: (str(invoices[pair[1]].pk) if pair[1] in invoices else "", str(pair[0].pk)))
        for line, number in to_match:
            _statement_line_match(
                principal=principal, statement=statement, line=line, invoice_number=number, invoice=invoices.get(number)
            )
        statuses = Counter(str(line.status) for line in new_lines)
        matched = statuses.get(BankStatementLineStatus.MATCHED.value, 0)
        statement.lines_new = len(new_lines)
        statement.lines_matched = matched
        statement.save(update_fields=["lines_new", "lines_matched"])
        report = ImportReport(
            statement_id=statement.id,
            layout=parsed.layout.value,
            lines_total=len(parsed.lines),
            lines_new=len(new_lines),
            lines_matched=matched,
            debits_skipped=parsed.debits_skipped,
            statuses=dict(sorted(statuses.items())),
        )
        audit_record(
            action=AuditAction.BANK_STATEMENT_IMPORTED,
            principal=principal,
            object_type="bank_statement_import",
            object_id=str(statement.id),
            payload={
                "file_name": statement.file_name,
                "file_sha256": parsed.sha256,
                "layout": parsed.layout.value,
                "lines_total": report.lines_total,
                "lines_new": report.lines_new,
                "lines_matched": report.lines_matched,
                "debits_skipped": report.debits_skipped,
                "statuses": dict(report.statuses),
            },
        )
    return report


def _open_line_locked(line_id: uuid.UUID) -> BankStatementLine:
    line = BankStatementLine.objects.select_for_update(no_key=True).filter(pk=line_id).first()
    if line is None:
        raise BankStatementLineNotFoundError()
    if line.status not in BANK_LINE_OPEN_STATUSES:
        raise BankStatementLineNotOpenError(status=line.get_status_display().lower())
    return line


def bank_statement_line_resolve(*, principal: Principal, line_id: uuid.UUID, invoice: str, user_id: int) -> Settlement:
    """Staff say which invoice a line that waits for them pays (``invoice``: its number or
    its payment reference), and the ledger records it. A line flagged as a possible
    duplicate is resolved this way when staff found it is a transfer of its own (else
    they ignore it). The payment's transaction id is the line's, as if it had matched."""
    mismatch = False
    with unit_of_work(principal):
        line = _open_line_locked(line_id)
        target = _invoice_for_staff_input(invoice)
        previous = line.status
        try:
            settlement = payment_receive(
                principal=principal,
                invoice_id=target.id,
                amount=Money(line.amount_minor, line.currency),
                gateway=GatewayCode.BANK_TRANSFER,
                transaction_id=STATEMENT_TRANSACTION_PREFIX + line.fingerprint,
                method=PaymentMethod.BANK_TRANSFER,
                recorded_by=f"bank_statement_line:staff:{user_id}",
            )
        except InvoiceChecksumMismatchError:
            mismatch = True
        else:
            line.status = BankStatementLineStatus.RESOLVED
            line.invoice = target
            line.payment = settlement.payment
            line.resolved_by_id = user_id
            line.resolved_at = timezone.now()
            line.note = f"Resolved by staff to {target.number} (was {previous})."
            line.save(update_fields=["status", "invoice", "payment", "resolved_by", "resolved_at", "note"])
            payment: Payment | None = settlement.payment
            audit_record(
                action=AuditAction.BANK_STATEMENT_LINE_RESOLVED,
                principal=principal,
                object_type="invoice",
                object_id=str(target.id),
                customer_id=target.customer_id,
                payload={
                    **_line_summary(line),
                    "previous_status": previous,
                    "invoice_number": target.number,
                    "payment_id": str(payment.id) if payment else None,
                    "payment_status": payment.status if payment else None,
                },
            )
    if mismatch:
        raise InvoiceChecksumMismatchError()
    return settlement


def bank_statement_line_ignore(
    *, principal: Principal, line_ids: list[uuid.UUID], user_id: int, reason: str = "ignored by staff"
) -> int:
    """Staff set aside lines that pay no invoice (a refund from a supplier, interest, a
    transfer between our own accounts) or that were the transfer already recorded
    (``duplicate``). Audited per line; lines no longer waiting are left alone. Returns how
    many changed."""
    card_numbers_refuse({"reason": reason})
    reason = " ".join(reason.split())[:500] or "ignored by staff"
    with unit_of_work(principal):
        lines = list(
            BankStatementLine.objects.select_for_update(no_key=True)
            .filter(id__in=line_ids, status__in=BANK_LINE_OPEN_STATUSES)
            .order_by("pk")
        )
        now = timezone.now()
        for line in lines:
            previous = line.status
            line.status = BankStatementLineStatus.IGNORED
            line.resolved_by_id = user_id
            line.resolved_at = now
            line.note = reason
            line.save(update_fields=["status", "resolved_by", "resolved_at", "note"])
            audit_record(
                action=AuditAction.BANK_STATEMENT_LINE_IGNORED,
                principal=principal,
                object_type="bank_statement_line",
                object_id=str(line.id),
                payload={**_line_summary(line), "previous_status": previous, "reason": reason},
            )
    return len(lines)
