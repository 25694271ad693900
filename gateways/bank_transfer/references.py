"""Payment references: ISO 11649 "RF" creditor references built from invoice numbers.

A payer types the reference into their bank's "reference" or "description" field, and
it comes back to us in the narrative of a statement line. Its two check digits (ISO 7064
MOD 97-10, the scheme of IBANs) let us tell a mistyped reference from a right one, so a
typo never pays the wrong invoice.

* The **body** is the invoice number without its separators, upper-case:
  ``INV-2026-000034`` -> ``INV2026000034``. ISO 11649 allows at most 21 characters.
* The **check digits** ``cc`` make ``body + "RF" + cc`` (letters as numbers, ``A`` = 10
  ... ``Z`` = 35) leave the remainder 1 modulo 97: ``RFccINV2026000034``.
* Printed for people in groups of four: ``RF18 INV2 0260 0003 4`` (:func:`reference_print`).

What the check digits catch. MOD 97-10 detects every substitution of a digit by a digit or
a letter by a letter, and every transposition of two adjacent digits or two adjacent
letters. It does *not* detect every change between a letter and a digit (a letter is two
decimal digits, so the change shifts the rest of the number): swapping ``M2`` <-> ``2M``,
``B1`` <-> ``1B`` or ``X3`` <-> ``3X`` keeps the remainder, and some letter-for-digit
substitutions do too. So a reference is *valid* only when its check digits pass **and**
its body has exactly the shape an invoice number of ours has (:data:`BODY_SHAPE`:
letters, then a 20xx year, then the serial) - every such letter/digit slip breaks that
shape. With both, every single-character substitution and every adjacent transposition
of one of our references is refused (``tests/gateways/bank_transfer/test_references.py``
proves it over generated numbers).

Hence the invoice-number prefix (``INVOICE_NUMBER_PREFIX``) must be 1-11 letters A-Z for
bank transfer: :func:`payment_reference_for` refuses any other number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

PREFIX = "RF"
BODY_MAX_LENGTH = 21
"""ISO 11649: up to 21 alphanumeric characters after ``RF`` and the check digits."""

INVOICE_NUMBER_SHAPE = re.compile(r"^(?P<prefix>[A-Z]{1,11})-(?P<year>20\d{2})-(?P<serial>\d{6}|[1-9]\d{6,})$")
"""The invoice numbers a reference can carry: ``invoices.numbering.format_invoice_number``
with a letters-only prefix (``<PREFIX>-<year>-<serial, at least 6 digits>``)."""

BODY_SHAPE = re.compile(r"^(?P<prefix>[A-Z]+)(?P<year>20\d{2})(?P<serial>\d{6}|[1-9]\d{6,})$")
"""The same number with its separators removed. A serial of more than six digits never
starts with 0 (the number is zero-padded to six digits only), which keeps the split of
prefix, year and serial unique."""

_SEPARATORS = re.compile(r"[\s\-]+")
_ALNUM = re.compile(r"^[A-Z0-9]+$")
# The start of a reference in free text: "RF" and two digits, not glued to a word before it.
_START = re.compile(r"(?<![A-Z0-9])RF ?(\d) ?(\d)")
# What may follow the check digits: alphanumeric runs separated by spaces or hyphens.
_TOKEN = re.compile(r"[A-Z0-9]+")
_GAP = re.compile(r"[ \t\-]*")


class InvalidInvoiceNumberError(ValueError):
    """The invoice number cannot be carried by a payment reference (see the module doc)."""


class ReferenceStatus(StrEnum):
    VALID = "valid"
    """The check digits pass and the body is one of our invoice numbers."""
    MISTYPED = "mistyped"
    """It reads as a reference but the check digits (or the number's shape) fail: a typo."""


@dataclass(frozen=True)
class FoundReference:
    """One reference read from a text."""

    reference: str
    """Compact and upper-case (``RF18INV2026000034``); for a mistyped one, as read."""
    status: ReferenceStatus
    invoice_number: str = ""
    """The invoice number it names (``INV-2026-000034``); empty unless valid."""
    looks_like_invoice: bool = False
    """Its body has the shape of an invoice number (a mistyped one may still)."""

    @property
    def printed(self) -> str:
        return reference_print(self.reference)


class ScanOutcome(StrEnum):
    NONE = "none"
    VALID = "valid"
    MISTYPED = "mistyped"
    AMBIGUOUS = "ambiguous"


@dataclass(frozen=True)
class ReferenceScan:
    """Every reference found in one text (a bank narrative), and what they add up to."""

    found: tuple[FoundReference, ...]

    @property
    def valid(self) -> tuple[FoundReference, ...]:
        """The distinct valid references, in order of appearance."""
        seen: dict[str, FoundReference] = {}
        for item in self.found:
            if item.status is ReferenceStatus.VALID:
                seen.setdefault(item.reference, item)
        return tuple(seen.values())

    @property
    def outcome(self) -> ScanOutcome:
        """``VALID``: exactly one reference, valid (repeats of it are fine). ``AMBIGUOUS``:
        two different valid references, or a valid one beside a mistyped one that still
        looks like an invoice number (which invoice did the payer mean?). ``MISTYPED``: only
        mistyped ones. ``NONE``: no reference at all."""
        valid = self.valid
        mistyped = [item for item in self.found if item.status is ReferenceStatus.MISTYPED]
        if len(valid) > 1 or (valid and any(item.looks_like_invoice for item in mistyped)):
            return ScanOutcome.AMBIGUOUS
        if valid:
            return ScanOutcome.VALID
        if mistyped:
            return ScanOutcome.MISTYPED
        return ScanOutcome.NONE

    @property
    def reference(self) -> FoundReference | None:
        """The one reference to show or record: the valid one, else the first mistyped."""
        valid = self.valid
        if valid:
            return valid[0]
        return self.found[0] if self.found else None


def _numeric(text: str) -> int:
    """Letters as two-digit numbers (A = 10 ... Z = 35), digits as themselves."""
    return int("".join(str(int(char, 36)) for char in text))


def check_digits(body: str) -> str:
    """The two ISO 11649 check digits of ``body`` (upper-case alphanumerics)."""
    return f"{98 - _numeric(body + PREFIX + '00') % 97:02d}"


def checksum_valid(reference: str) -> bool:
    """ISO 11649 / ISO 7064 MOD 97-10 over a compact reference: ``RFcc`` moved to the end,
    the remainder modulo 97 must be 1. The check digits alone: see :func:`reference_parse`
    for what a *valid* reference of ours is."""
    if len(reference) < 5 or not reference.startswith(PREFIX) or not _ALNUM.match(reference):
        return False
    if not reference[2:4].isdigit() or len(reference) - 4 > BODY_MAX_LENGTH:
        return False
    return _numeric(reference[4:] + reference[:4]) % 97 == 1


def reference_body(invoice_number: str) -> str:
    """The reference body of an invoice number, or :class:`InvalidInvoiceNumberError`."""
    if not INVOICE_NUMBER_SHAPE.match(invoice_number):
        raise InvalidInvoiceNumberError(
            f"{invoice_number!r} cannot be a payment reference: the number must be <LETTERS>-<20xx>-<serial> "
            "with 1-11 letters A-Z as its prefix"
        )
    body = invoice_number.replace("-", "")
    if len(body) > BODY_MAX_LENGTH:
        raise InvalidInvoiceNumberError(f"{invoice_number!r} is too long for a payment reference (21 characters)")
    return body


def payment_reference_for(invoice_number: str) -> str:
    """The compact payment reference of an invoice number: ``RFccINV2026000034``."""
    body = reference_body(invoice_number)
    return f"{PREFIX}{check_digits(body)}{body}"


def reference_print(reference: str) -> str:
    """A compact reference in groups of four, as ISO 11649 prints it for people."""
    return " ".join(reference[i : i + 4] for i in range(0, len(reference), 4))


def invoice_number_from_body(body: str) -> str:
    """The invoice number a reference body names (``""`` when it has not the shape)."""
    matched = BODY_SHAPE.match(body)
    if matched is None:
        return ""
    return f"{matched['prefix']}-{matched['year']}-{matched['serial']}"


def _reading(digits: str, body: str) -> FoundReference:
    reference = f"{PREFIX}{digits}{body}"
    number = invoice_number_from_body(body)
    if number and checksum_valid(reference):
        return FoundReference(
            reference=reference, status=ReferenceStatus.VALID, invoice_number=number, looks_like_invoice=True
        )
    return FoundReference(reference=reference, status=ReferenceStatus.MISTYPED, looks_like_invoice=bool(number))


def _bodies_after(text: str, position: int) -> list[str]:
    """Each way the reference could end after ``position``: the alphanumeric runs that
    follow, joined over the spaces or hyphens between them, at most 21 characters. A
    reference ends at a separator, never inside a run of letters and digits."""
    bodies: list[str] = []
    body = ""
    at = position
    while True:
        gap = _GAP.match(text, at)
        token = _TOKEN.match(text, gap.end() if gap else at)
        if token is None:
            return bodies
        body += token.group()
        if len(body) > BODY_MAX_LENGTH:
            return bodies
        bodies.append(body)
        at = token.end()


def _readings_of(digits: str, bodies: list[str]) -> list[FoundReference]:
    """What one ``RFcc`` start contributes: the longest reading with the shape of an
    invoice number decides by its check digits (shorter ones are the same reference cut
    at a space: ``RF.. A200 0100 0000 0``). When it fails but a shorter one passes - a
    slip in a long reference, or digits after a right one (``... 6 150``) - both are
    kept: the text is ambiguous, for staff, never valid by chance."""
    readings = [_reading(digits, body) for body in bodies]
    if not readings:
        return [FoundReference(reference=f"{PREFIX}{digits}", status=ReferenceStatus.MISTYPED)]
    shaped = [reading for reading in readings if reading.looks_like_invoice]
    if not shaped:
        return [readings[0]]
    longest = shaped[-1]
    valid = [reading for reading in shaped[:-1] if reading.status is ReferenceStatus.VALID]
    if longest.status is ReferenceStatus.VALID or not valid:
        return [longest]
    return [*valid, longest]


def references_find(text: str) -> ReferenceScan:
    """Every payment reference in a free text (a bank narrative), case- and space-insensitive.

    A reference starts with ``RF`` and two digits (not glued to a word before it); spaces
    or hyphens may separate its groups, and it ends at a separator. Where exactly is found
    by the shape of an invoice number (:func:`_readings_of`). A reference without that
    shape, or whose check digits fail, is *mistyped*.

    Residual risk, documented: past serial 999999 (a million invoices in a year) the
    number may end at more than one space; a slip that turns the reference's last
    character into a letter then leaves a shorter number's reading, whose check digits
    pass once in 97. Serials of six digits have no shorter reading.
    """
    upper = text.upper()
    found: list[FoundReference] = []
    for start in _START.finditer(upper):
        digits = start.group(1) + start.group(2)
        found.extend(_readings_of(digits, _bodies_after(upper, start.end())))
    return ReferenceScan(found=tuple(found))


def reference_parse(text: str) -> FoundReference | None:
    """One reference typed by staff (spaces and hyphens allowed, any case): the whole
    input must be the reference. ``None`` when it is not one at all."""
    compact = _SEPARATORS.sub("", text.upper())
    if len(compact) < 5 or not compact.startswith(PREFIX) or not compact[2:4].isdigit() or not _ALNUM.match(compact):
        return None
    if len(compact) - 4 > BODY_MAX_LENGTH:
        return FoundReference(reference=compact, status=ReferenceStatus.MISTYPED)
    return _reading(compact[2:4], compact[4:])
