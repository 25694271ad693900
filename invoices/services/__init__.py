"""Writes of invoices, by sub-domain: ``lifecycle`` (create, issue, void, write off),
``payments`` (applying the payments ledger's total), ``refunds`` (credit notes, the refunded
total, disputes), ``tax_rates``, ``checksums`` (recording a
mismatch once, the sweep).

Callers import the entry points from here; pricing lives in ``invoices.pricing``.
"""

from invoices.services.checksums import (
    ChecksumReport,
    invoice_checksum_mismatch_record,
    invoice_checksum_verify,
    invoices_verify_checksums,
)
from invoices.services.lifecycle import (
    InvoicePreview,
    invoice_create,
    invoice_create_priced,
    invoice_issue,
    invoice_mark_uncollectible,
    invoice_preview,
    invoice_void,
)
from invoices.services.payments import invoice_payments_apply
from invoices.services.refunds import (
    REFUNDABLE,
    credit_note_summary,
    invoice_dispute_close,
    invoice_dispute_open,
    invoice_refund_apply,
)
from invoices.services.tax_rates import tax_rate_create

__all__ = [
    "REFUNDABLE",
    "ChecksumReport",
    "InvoicePreview",
    "credit_note_summary",
    "invoice_checksum_mismatch_record",
    "invoice_checksum_verify",
    "invoice_create",
    "invoice_create_priced",
    "invoice_dispute_close",
    "invoice_dispute_open",
    "invoice_issue",
    "invoice_mark_uncollectible",
    "invoice_payments_apply",
    "invoice_preview",
    "invoice_refund_apply",
    "invoice_void",
    "invoices_verify_checksums",
    "tax_rate_create",
]
