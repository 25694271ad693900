"""Tampering as a table owner would do it (triggers disabled), and what it must not leave.

Only committed data can be tampered with this way (the owner role has its own connection),
so the tests that use it run on ``committed_db`` and compare per invoice, never globally.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import connections, transaction

from audit.models import AuditEvent
from invoices.models import Invoice, InvoiceChecksumMismatch
from o2s.models import IdempotencyRecord
from paymenter import rls
from paymenter.models import OutboxMessage
from paymenter.principals import SystemPrincipal

OBSERVER = SystemPrincipal(label="test:tampering")
GUARD = "invoices_guard_issued_invoice"


def tamper_totals(invoice_id: uuid.UUID, *, total_minor: int = 1) -> None:
    """Set what ``invoice_id`` says is owed to ``total_minor`` (no tax), as the owner with
    the immutability trigger disabled, and commit: only the checksum can now tell."""
    owner = connections["owner"]
    with transaction.atomic(using="owner"), owner.cursor() as cursor:
        cursor.execute("SELECT set_config('paymenter.scope', 'system', true)")
        cursor.execute(f"ALTER TABLE invoices_invoice DISABLE TRIGGER {GUARD}")
        cursor.execute(
            "UPDATE invoices_invoice SET subtotal_minor = %s, tax_minor = 0, total_minor = %s WHERE id = %s",
            [total_minor, total_minor, invoice_id],
        )
        cursor.execute(f"ALTER TABLE invoices_invoice ENABLE TRIGGER {GUARD}")
    owner.close()


def invoice_trace(invoice_id: uuid.UUID) -> dict[str, Any]:
    """Everything an action on the invoice could have written, read as the system."""
    with rls.acting_as(OBSERVER):
        invoice = Invoice.objects.get(id=invoice_id)
        return {
            "row": {
                "status": invoice.status,
                "amount_paid_minor": invoice.amount_paid_minor,
                "paid_at": invoice.paid_at,
                "voided_at": invoice.voided_at,
                "void_reason": invoice.void_reason,
                "total_minor": invoice.total_minor,
            },
            "audit": list(
                AuditEvent.objects.filter(object_id=str(invoice_id))
                .order_by("sequence")
                .values_list("action", flat=True)
            ),
            "outbox": OutboxMessage.objects.filter(ordering_key=f"invoice:{invoice_id}").count(),
            "mismatch_rows": InvoiceChecksumMismatch.objects.filter(invoice_id=invoice_id).count(),
            "idempotency": IdempotencyRecord.objects.count(),
        }


def mismatch_events(invoice_id: uuid.UUID) -> int:
    with rls.acting_as(OBSERVER):
        return AuditEvent.objects.filter(object_id=str(invoice_id), action="invoice.checksum_mismatch").count()
