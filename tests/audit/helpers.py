"""Shared helpers for the audit tests: committed events and owner-side forgery."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections, transaction
from django.db.backends.utils import CursorWrapper

from audit.actions import AuditAction
from audit.models import AuditEvent
from audit.services import audit_record
from paymenter import rls
from paymenter.principals import SystemPrincipal

WRITER = SystemPrincipal(label="test:audit-writer")


def record_committed(count: int, *, object_id: str | None = None) -> list[AuditEvent]:
    """``count`` events, each committed in its own transaction on the app connection."""
    marker = object_id or uuid.uuid4().hex
    events: list[AuditEvent] = []
    with rls.acting_as(WRITER):
        for index in range(count):
            with transaction.atomic():
                events.append(
                    audit_record(
                        action=AuditAction.INVOICE_CREATED,
                        object_type="test",
                        object_id=marker,
                        payload={"index": index, "amount_minor": 1000 + index},
                    )
                )
    return events


@contextmanager
def owner_forgery() -> Iterator[CursorWrapper]:
    """An owner transaction with the audit triggers and forced RLS switched off, rolled back.

    This is what a table owner or superuser could do; the chain must still detect it.
    Everything done inside (tampering and the verification that reads it) is undone.
    """
    owner = connections["owner"]
    with transaction.atomic(using="owner"), owner.cursor() as cursor:
        for table in ("audit_auditevent", "audit_auditchainhead"):
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        cursor.execute("ALTER TABLE audit_auditevent NO FORCE ROW LEVEL SECURITY")
        try:
            yield cursor
        finally:
            transaction.set_rollback(True, using="owner")


def scalar(cursor: CursorWrapper, sql: str, params: list[Any] | None = None) -> Any:
    cursor.execute(sql, params or [])
    row = cursor.fetchone()
    assert row is not None
    return row[0]
