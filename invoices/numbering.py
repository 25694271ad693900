"""Gapless, human-readable document numbers: ``<PREFIX>-<YEAR>-<000123>``.

Invoices (``INVOICE_NUMBER_PREFIX``) and credit notes (``CREDIT_NOTE_NUMBER_PREFIX``) each
have their own series. The year's counter row is locked for the rest of the issuing
transaction, so numbers are assigned strictly in commit order and a rolled-back issue gives
its number back. Because that lock serializes every issue, callers take the number as late
as they can: after pricing, validation and every read, just before the writes that need it
(docs/performance.md).
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import connection

from invoices.models import InvoiceNumberSequence

_TABLE = InvoiceNumberSequence._meta.db_table
# One round trip: creates the year's counter at 1, or increments it, and locks the row
# until the transaction ends either way (a concurrent issuer waits here, then sees the
# committed value: READ COMMITTED re-checks the conflicting row).
_NEXT_SQL = (
    f"INSERT INTO {_TABLE} (prefix, year, last_number) VALUES (%s, %s, 1) "  # noqa: S608 - constant table name
    f"ON CONFLICT (prefix, year) DO UPDATE SET last_number = {_TABLE}.last_number + 1 "
    "RETURNING last_number"
)


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
    with connection.cursor() as cursor:
        cursor.execute(_NEXT_SQL, [prefix, issue_date.year])
        row = cursor.fetchone()
    if row is None:  # RETURNING always yields the row; a guard for the type checker
        raise RuntimeError("the number counter returned no row")
    return format_invoice_number(prefix=prefix, year=issue_date.year, number=int(row[0]))
