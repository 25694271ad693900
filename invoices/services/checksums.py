"""The periodic sweep over issued invoices' tamper checksums."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from audit.unit_of_work import unit_of_work
from invoices import checksum
from invoices.models import InvoiceStatus
from invoices.selectors import invoices_for_principal
from invoices.services.auditing import audit_checksum_mismatch
from paymenter.principals import Principal


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
        with unit_of_work(principal):
            batch = invoices_for_principal(principal=principal).exclude(status=InvoiceStatus.DRAFT)
            if last_id is not None:
                batch = batch.filter(id__gt=last_id)
            invoices = list(batch.order_by("id").prefetch_related("lines")[:batch_size])
            for invoice in invoices:
                checked += 1
                if not checksum.is_valid(invoice, list(invoice.lines.all())):
                    mismatches.append((str(invoice.id), invoice.number or ""))
                    audit_checksum_mismatch(principal=principal, invoice=invoice, attempted="verify")
        if len(invoices) < batch_size:
            return ChecksumReport(checked=checked, mismatches=tuple(mismatches))
        last_id = invoices[-1].id
