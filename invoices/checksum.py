"""Invoice checksums: an HMAC over everything that defines what is owed.

The canonical form is UTF-8 JSON with sorted keys and no whitespace over: invoice id,
number, customer id, currency, issue and due dates, every line (position, description,
quantity, unit amount, tax code, tax rate to 4 places, subtotal, tax, total, service
period) and the subtotal/tax/total. The key id is stored beside the checksum so the
key (``INVOICE_CHECKSUM_KEYS``) can rotate. See docs/invoices-and-checksums.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from decimal import Decimal

from invoices.models import Invoice, InvoiceLine
from paymenter import keyring

KEYRING_SETTING = "INVOICE_CHECKSUM_KEYS"


def _date(value: object) -> str | None:
    return value.isoformat() if value is not None else None  # type: ignore[attr-defined]


def canonical_form(invoice: Invoice, lines: Sequence[InvoiceLine]) -> bytes:
    document = {
        "v": 1,
        "id": str(invoice.id),
        "number": invoice.number,
        "customer": str(invoice.customer_id),
        "currency": invoice.currency,
        "issue_date": _date(invoice.issue_date),
        "due_date": _date(invoice.due_date),
        "subtotal_minor": invoice.subtotal_minor,
        "tax_minor": invoice.tax_minor,
        "total_minor": invoice.total_minor,
        "lines": [
            {
                "position": line.position,
                "description": line.description,
                "quantity": line.quantity,
                "unit_amount_minor": line.unit_amount_minor,
                "tax_code": line.tax_code,
                "tax_rate": f"{Decimal(line.tax_rate):.4f}",
                "subtotal_minor": line.subtotal_minor,
                "tax_minor": line.tax_minor,
                "total_minor": line.total_minor,
                "period_start": _date(line.period_start),
                "period_end": _date(line.period_end),
            }
            for line in sorted(lines, key=lambda item: item.position)
        ],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(canonical: bytes) -> tuple[str, str]:
    """``(key_id, hex digest)`` of a document's canonical form under the primary checksum
    key: the one signing step of invoices and credit notes (``invoices.credit_notes``)."""
    ring = keyring.from_settings(KEYRING_SETTING)
    return ring.primary_id, hmac.new(ring.primary, canonical, hashlib.sha256).hexdigest()


def signature_matches(canonical: bytes, *, key_id: str, digest: str) -> bool:
    """Whether ``digest`` is the HMAC of ``canonical`` under the key ``key_id`` (any key of
    the ring, so documents signed before a rotation still verify); an unknown key fails."""
    if not digest or not key_id:
        return False
    try:
        key = keyring.from_settings(KEYRING_SETTING).get(key_id)
    except KeyError:
        return False
    return hmac.compare_digest(hmac.new(key, canonical, hashlib.sha256).hexdigest(), digest)


def compute(invoice: Invoice, lines: Sequence[InvoiceLine]) -> tuple[str, str]:
    """Returns ``(key_id, hex digest)`` under the primary checksum key."""
    return sign(canonical_form(invoice, lines))


def is_valid(invoice: Invoice, lines: Sequence[InvoiceLine] | None = None) -> bool:
    """True when the stored checksum matches the invoice as stored now."""
    if not invoice.checksum or not invoice.checksum_key_id:
        return False
    if lines is None:
        lines = list(InvoiceLine.objects.filter(invoice_id=invoice.id))
    return signature_matches(canonical_form(invoice, lines), key_id=invoice.checksum_key_id, digest=invoice.checksum)
