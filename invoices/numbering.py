"""Gapless, human-readable document numbers: ``<PREFIX>-<YEAR>-<000123>``.

Invoices (``INVOICE_NUMBER_PREFIX``) and credit notes (``CREDIT_NOTE_NUMBER_PREFIX``) each
have their own series. The year's counter row is locked for the rest of the issuing
transaction, so numbers are assigned strictly in commit order and a rolled-back issue gives
its number back.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings

from invoices.models import InvoiceNumberSequence


def format_invoice_number(*, prefix: str, year: int, number: int) -> str:
    return f"{prefix}-{year}-{number:06d}"


def invoice_number_next(*, issue_date: dt.date) -> str:
    """Must run inside the issuing transaction."""
    return document_number_next(prefix=settings.INVOICE_NUMBER_PREFIX, issue_date=issue_date)


def credit_note_number_next(*, issue_date: dt.date) -> str:
    """Must run inside the issuing transaction."""
    return document_number_next(prefix=settings.CREDIT_NOTE_NUMBER_PREFIX, issue_date=issue_date)


def document_number_next(*, prefix: str, issue_date: dt.date) -> str:
    """The next number of ``prefix``'s series in ``issue_date``'s year (row locked to commit)."""
    InvoiceNumberSequence.objects.bulk_create(
        [InvoiceNumberSequence(prefix=prefix, year=issue_date.year)], ignore_conflicts=True
    )
    sequence = InvoiceNumberSequence.objects.select_for_update().get(prefix=prefix, year=issue_date.year)
    sequence.last_number += 1
    sequence.save(update_fields=["last_number"])
    return format_invoice_number(prefix=prefix, year=issue_date.year, number=sequence.last_number)
