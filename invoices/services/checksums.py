"""Tamper checksums of issued invoices: the periodic sweep, and what happens when any
read or action finds an invoice that does not verify.

A mismatch is recorded once per invoice (``InvoiceChecksumMismatch``, insert-on-conflict):
the first detection, whoever makes it, writes the ``invoice.checksum_mismatch`` audit event
and raises the alert (a CRITICAL log line with ``alert=invoice_checksum_mismatch`` and the
``invoice_checksum_mismatches_total`` metric) after its transaction commits. Every later
detection writes nothing, so reads and retried attempts cannot flood the audit trail or
the pager. Whether an action is refused never depends on that row: each action recomputes
the checksum itself (docs/invoices-and-checksums.md).
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction

from audit.unit_of_work import unit_of_work
from invoices import checksum, credit_notes
from invoices.models import CreditNote, Invoice, InvoiceChecksumMismatch, InvoiceLine, InvoiceStatus
from invoices.selectors import invoices_for_principal
from invoices.services.auditing import audit_checksum_mismatch
from paymenter.metrics import Metric, metric_increment
from paymenter.principals import Principal

logger = logging.getLogger(__name__)

ALERT = "invoice_checksum_mismatch"


@dataclass(frozen=True)
class ChecksumReport:
    checked: int
    mismatches: tuple[tuple[str, str], ...]  # (invoice id, number)
    credit_notes_checked: int = 0
    credit_note_mismatches: tuple[tuple[str, str], ...] = ()  # (credit note id, number)


def invoice_checksum_mismatch_record(*, principal: Principal, invoice: Invoice, attempted: str) -> bool:
    """Record that ``invoice`` (issued) failed its checksum; ``True`` for the first detection.

    First writer wins: the row is inserted on conflict do nothing (the one-to-one is the
    unique constraint) in its own unit of work; a concurrent detection waits for the first
    to commit and then inserts nothing. Only the writer that inserted it audits and, once
    its transaction has committed, alerts. ``attempted`` names what was being done
    (``o2s_api_read``, ``hosted_page``, ``verify``, ``void``, ``mark_paid`` ...).
    """
    candidate = InvoiceChecksumMismatch(
        invoice_id=invoice.id,
        customer_id=invoice.customer_id,
        detected_by=f"{principal.actor_type}:{principal.actor_id}"[:300],
        attempted=attempted[:64],
        checksum_key_id=invoice.checksum_key_id,
    )
    with unit_of_work(principal):
        InvoiceChecksumMismatch.objects.bulk_create([candidate], ignore_conflicts=True)
        first = InvoiceChecksumMismatch.objects.filter(pk=candidate.pk).exists()
        if first:
            audit_checksum_mismatch(principal=principal, invoice=invoice, attempted=attempted)
            transaction.on_commit(functools.partial(_alert, candidate=candidate, number=invoice.number or ""))
    return first


def _alert(*, candidate: InvoiceChecksumMismatch, number: str) -> None:
    """After the commit: no alert for a detection that was rolled back (the next one alerts)."""
    logger.critical(
        "ALERT invoice %s (%s) fails its checksum: altered outside Paymenter; payment, void and "
        "write-off are refused. First detected during %s (the audit trail names who)",
        number,
        candidate.invoice_id,
        candidate.attempted,
        extra={
            "alert": ALERT,
            "invoice_id": str(candidate.invoice_id),
            "invoice_number": number,
            "customer_id": str(candidate.customer_id),
            "attempted": candidate.attempted,
        },
    )
    metric_increment(Metric.INVOICE_CHECKSUM_MISMATCHES)


def invoice_checksum_verify(
    *, principal: Principal, invoice: Invoice, attempted: str, lines: Sequence[InvoiceLine] | None = None
) -> bool:
    """``True`` when ``invoice`` may be trusted: a draft (signed only when issued) or an
    issued invoice whose checksum verifies. Otherwise the mismatch is recorded
    (:func:`invoice_checksum_mismatch_record`) and ``False`` returned; the caller refuses
    (``InvoiceChecksumMismatchError``) or shows nothing of the invoice. ``lines``: the
    invoice's lines if already loaded."""
    if invoice.status == InvoiceStatus.DRAFT or checksum.is_valid(invoice, lines):
        return True
    invoice_checksum_mismatch_record(principal=principal, invoice=invoice, attempted=attempted)
    return False


def invoices_verify_checksums(*, principal: Principal, batch_size: int = 500) -> ChecksumReport:
    """Check every issued invoice and report each mismatch (every run); a mismatch is
    audited and alerted only the first time it is found (by this sweep or anything else)."""
    checked = 0
    mismatches: list[tuple[str, str]] = []
    last_id: uuid.UUID | None = None
    while True:
        with unit_of_work(principal):
            batch = invoices_for_principal(principal=principal).exclude(status=InvoiceStatus.DRAFT)
            if last_id is not None:
                batch = batch.filter(id__gt=last_id)
            invoices = list(batch.order_by("id").prefetch_related("lines")[:batch_size])
            for invoice in invoices:
                checked += 1
                lines = list(invoice.lines.all())
                if not invoice_checksum_verify(principal=principal, invoice=invoice, attempted="verify", lines=lines):
                    mismatches.append((str(invoice.id), invoice.number or ""))
        if len(invoices) < batch_size:
            notes_checked, note_mismatches = _credit_notes_verify(principal=principal, batch_size=batch_size)
            return ChecksumReport(
                checked=checked,
                mismatches=tuple(mismatches),
                credit_notes_checked=notes_checked,
                credit_note_mismatches=note_mismatches,
            )
        last_id = invoices[-1].id


def _credit_notes_verify(*, principal: Principal, batch_size: int) -> tuple[int, tuple[tuple[str, str], ...]]:
    """Check every credit note (immutable by trigger, so a mismatch means the database was
    changed behind the triggers' back): each mismatch is logged CRITICAL on every run."""
    checked = 0
    mismatches: list[tuple[str, str]] = []
    last_id: uuid.UUID | None = None
    while True:
        with unit_of_work(principal):
            batch = CreditNote.objects.all()
            if last_id is not None:
                batch = batch.filter(id__gt=last_id)
            notes = list(batch.order_by("id").prefetch_related("lines")[:batch_size])
        for note in notes:
            checked += 1
            if not credit_notes.is_valid(note, list(note.lines.all())):
                logger.critical(
                    "ALERT credit note %s (%s) fails its checksum: altered outside Paymenter",
                    note.number,
                    note.id,
                    extra={"alert": "credit_note_checksum_mismatch", "credit_note_id": str(note.id)},
                )
                mismatches.append((str(note.id), note.number))
        if len(notes) < batch_size:
            return checked, tuple(mismatches)
        last_id = notes[-1].id
