"""Credit notes: which part of which invoice line a refund reverses, and the checksum.

A refund gives back a GST-inclusive amount. :func:`credit_allocate` spreads it over the
invoice's lines in proportion to what each line still has uncredited (largest remainder,
so the parts add up to the refund exactly and no line is credited beyond its total), and
reverses GST *cumulatively* per line: after a line has been credited ``c`` of its total
``T`` in all, exactly ``round_half_up(line tax * c / T)`` of its GST has been reversed. So
every credit note's GST is the sum of its lines' GST, a series of partial refunds never
reverses more GST than the line carried, and a full refund reverses exactly the invoice's
GST, whatever the order and size of the refunds (hypothesis-tested).

The checksum is the invoice's scheme (``INVOICE_CHECKSUM_KEYS``, an HMAC over a canonical
JSON form) over everything that defines what is credited, with ``"kind": "credit_note"``
so that a credit note's digest can never stand for an invoice's.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from invoices import checksum
from invoices.models import CreditNote, CreditNoteLine, InvoiceLine


@dataclass(frozen=True)
class CreditedPart:
    """The part of one invoice line a credit note reverses (GST-inclusive ``total``)."""

    invoice_line: InvoiceLine
    subtotal_minor: int
    tax_minor: int
    total_minor: int


def _round_half_up_ratio(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half up, in integers (both non-negative)."""
    return (2 * numerator + denominator) // (2 * denominator)


def _reversed_tax(line: InvoiceLine, credited_total: int) -> int:
    """The GST reversed once ``credited_total`` of ``line``'s total has been credited in all."""
    if line.total_minor == 0:
        return 0
    return _round_half_up_ratio(line.tax_minor * credited_total, line.total_minor)


def credit_allocate(
    *, lines: Sequence[InvoiceLine], credited: Mapping[uuid.UUID, int], amount_minor: int
) -> list[CreditedPart]:
    """Spread ``amount_minor`` over ``lines``; ``credited`` maps a line id to the total
    already credited on it by earlier credit notes. Lines that get nothing are left out.

    Raises ``ValueError`` if ``amount_minor`` is not positive or exceeds what is uncredited.
    """
    remaining = {line.id: line.total_minor - credited.get(line.id, 0) for line in lines}
    uncredited = sum(remaining.values())
    if amount_minor <= 0 or amount_minor > uncredited:
        raise ValueError(f"cannot credit {amount_minor} of {uncredited} uncredited")
    ordered = sorted(lines, key=lambda line: line.position)
    shares: dict[uuid.UUID, int] = {}
    remainders: list[tuple[int, int, uuid.UUID]] = []
    for line in ordered:
        exact = amount_minor * remaining[line.id]
        shares[line.id], remainder = divmod(exact, uncredited)
        remainders.append((-remainder, line.position, line.id))
    leftover = amount_minor - sum(shares.values())
    for _, _, line_id in sorted(remainders)[:leftover]:  # largest remainders first, then position
        shares[line_id] += 1
    parts: list[CreditedPart] = []
    for line in ordered:
        share = shares[line.id]
        if share == 0:
            continue
        before = credited.get(line.id, 0)
        tax = _reversed_tax(line, before + share) - _reversed_tax(line, before)
        parts.append(CreditedPart(invoice_line=line, subtotal_minor=share - tax, tax_minor=tax, total_minor=share))
    return parts


def _date(value: object) -> str | None:
    return value.isoformat() if value is not None else None  # type: ignore[attr-defined]


def canonical_form(credit_note: CreditNote, lines: Sequence[CreditNoteLine]) -> bytes:
    document = {
        "v": 1,
        "kind": "credit_note",
        "id": str(credit_note.id),
        "number": credit_note.number,
        "invoice": str(credit_note.invoice_id),
        "customer": str(credit_note.customer_id),
        "currency": credit_note.currency,
        "issue_date": _date(credit_note.issue_date),
        "subtotal_minor": credit_note.subtotal_minor,
        "tax_minor": credit_note.tax_minor,
        "total_minor": credit_note.total_minor,
        "lines": [
            {
                "position": line.position,
                "invoice_line": str(line.invoice_line_id),
                "description": line.description,
                "tax_code": line.tax_code,
                "tax_rate": f"{Decimal(line.tax_rate):.4f}",
                "subtotal_minor": line.subtotal_minor,
                "tax_minor": line.tax_minor,
                "total_minor": line.total_minor,
            }
            for line in sorted(lines, key=lambda item: item.position)
        ],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def compute(credit_note: CreditNote, lines: Sequence[CreditNoteLine]) -> tuple[str, str]:
    """Returns ``(key_id, hex digest)`` under the primary checksum key."""
    return checksum.sign(canonical_form(credit_note, lines))


def is_valid(credit_note: CreditNote, lines: Sequence[CreditNoteLine] | None = None) -> bool:
    """True when the stored checksum matches the credit note as stored now."""
    if lines is None:
        lines = list(CreditNoteLine.objects.filter(credit_note_id=credit_note.id))
    return checksum.signature_matches(
        canonical_form(credit_note, lines), key_id=credit_note.checksum_key_id, digest=credit_note.checksum
    )
