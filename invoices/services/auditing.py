"""The audit records every invoice service writes, in its own transaction."""

from __future__ import annotations

from typing import Any

from audit.actions import AuditAction
from audit.services import audit_record
from invoices.models import Invoice
from paymenter.principals import Principal


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


def audit_checksum_mismatch(*, principal: Principal, invoice: Invoice, attempted: str) -> None:
    invoice_audit_record(
        action=AuditAction.INVOICE_CHECKSUM_MISMATCH,
        principal=principal,
        invoice=invoice,
        payload={"attempted": attempted, "checksum_key_id": invoice.checksum_key_id},
    )
