"""Reading bank statement CSV files: the layouts, strictly, without the database.

A statement is refused whole (:class:`~gateways.bank_transfer.errors.BankStatementInvalidError`
naming the line) rather than half-read: a file that is not what its layout says is not a
statement we can trust any line of. Only credits are kept (money received); debits and
zero lines are counted and skipped.

Layouts (docs/payments.md, "Import layouts", lists the sources):

* ``paymenter`` - our own, documented: header ``date,amount,currency,description,bank_reference``,
  ISO dates, signed amounts in major units (``150.00``), any currency we invoice in.
* ``commbank`` - CommBank NetBank CSV: no header; ``date,amount,description,balance``
  (sometimes a fifth, category column); ``dd/mm/yyyy``; signed amounts (``+150.00``).
* ``nab`` - NAB Internet Banking CSV: ``date,amount,account number,,transaction type,
  transaction details,balance[,category,merchant name]``, with or without that header;
  dates ``05 Mar 26`` (also ``05-Mar-26``, four-digit years); signed amounts.
* ``westpac`` - Westpac Online Banking CSV: header ``Bank Account,Date,Narrative,Debit Amount,
  Credit Amount,Balance,Categories,Serial``; ``dd/mm/yyyy``; credits in their own column.
* ``anz`` - ANZ Internet Banking CSV: no header; ``date,amount,description`` and sometimes
  more detail columns (appended to the description); ``dd/mm/yyyy`` or ``dd/mm/yy``.

The Australian banks' files name no currency: they are read as ``BANK_STATEMENT_CURRENCY``
(AUD), the currency of an Australian account.

Identity: each credit line gets a fingerprint (SHA-256 of its date, amount, currency,
description and bank reference, normalised, plus its *occurrence*: how many identical
lines came before it in the same file). Importing the same statement again, or an export
of an overlapping period, yields the same fingerprints, so nothing is stored twice; two
identical transfers on one day stay two lines.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from gateways.bank_transfer.errors import BankStatementInvalidError, BankStatementTooLargeError
from paymenter.money import Money, MoneyError, UnknownCurrencyError, normalize_currency

MAX_BYTES = 2 * 1024 * 1024
"""Largest file accepted: a year of a busy account's CSV is well under this."""
MAX_ROWS = 20_000
BANK_STATEMENT_CURRENCY = "AUD"
DESCRIPTION_MAX_LENGTH = 1000
BANK_REFERENCE_MAX_LENGTH = 255
FINGERPRINT_VERSION = "v1"


class StatementLayout(StrEnum):
    AUTO = "auto"
    PAYMENTER = "paymenter"
    COMMBANK = "commbank"
    NAB = "nab"
    WESTPAC = "westpac"
    ANZ = "anz"


LAYOUT_CHOICES: list[tuple[str, str]] = [
    (StatementLayout.AUTO, "Auto-detect"),
    (StatementLayout.PAYMENTER, "Paymenter (date,amount,currency,description,bank_reference)"),
    (StatementLayout.COMMBANK, "CommBank NetBank CSV"),
    (StatementLayout.NAB, "NAB Internet Banking CSV"),
    (StatementLayout.WESTPAC, "Westpac Online Banking CSV"),
    (StatementLayout.ANZ, "ANZ Internet Banking CSV"),
]

PAYMENTER_HEADER = ["date", "amount", "currency", "description", "bank_reference"]
WESTPAC_HEADER = [
    "bank account",
    "date",
    "narrative",
    "debit amount",
    "credit amount",
    "balance",
    "categories",
    "serial",
]

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1
    )
}
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_SLASH_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})$")
_NAB_DATE = re.compile(r"^(\d{1,2})[ \-]([A-Za-z]{3})[ \-](\d{4}|\d{2})$")
_AMOUNT = re.compile(r"^(?P<sign>[+-]?)\$?(?P<digits>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<fraction>\d+))?$")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class StatementLine:
    """One credit of a statement: money received."""

    row: int
    """Its line number in the file (1-based), for staff and error messages."""
    booked_on: date
    amount: Money
    description: str
    bank_reference: str
    occurrence: int
    """How many identical lines precede it in this file (0 for the first)."""

    @property
    def fingerprint(self) -> str:
        """Stable across re-imports of the same bank data (see the module doc)."""
        parts = [
            FINGERPRINT_VERSION,
            self.booked_on.isoformat(),
            str(self.amount.minor),
            self.amount.currency,
            normalise(self.description),
            normalise(self.bank_reference),
            str(self.occurrence),
        ]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class ParsedStatement:
    layout: StatementLayout
    lines: tuple[StatementLine, ...]
    debits_skipped: int
    rows_read: int
    sha256: str


@dataclass(frozen=True)
class _Entry:
    """A row as a layout read it, before debits are dropped and occurrences counted."""

    row: int
    booked_on: date
    minor: int
    currency: str
    description: str
    bank_reference: str = ""


class _RowError(Exception):
    def __init__(self, row: int, message: str) -> None:
        super().__init__(message)
        self.row = row
        self.message = message


def normalise(text: str) -> str:
    """Upper-case with runs of whitespace as one space: what identity compares."""
    return _SPACES.sub(" ", text).strip().upper()


# --- cells --------------------------------------------------------------------------------


def _date(row: int, text: str, *, kind: str) -> date:
    text = text.strip()
    try:
        if kind == "iso" and (found := _ISO_DATE.match(text)):
            return date(int(found[1]), int(found[2]), int(found[3]))
        if kind == "slash" and (found := _SLASH_DATE.match(text)):
            year = int(found[3]) + (2000 if len(found[3]) == 2 else 0)
            return date(year, int(found[2]), int(found[1]))
        if kind == "nab" and (found := _NAB_DATE.match(text)) and found[2].lower() in _MONTHS:
            year = int(found[3]) + (2000 if len(found[3]) == 2 else 0)
            return date(year, _MONTHS[found[2].lower()], int(found[1]))
    except ValueError:
        raise _RowError(row, f"{text[:30]!r} is not a date") from None
    expected = {"iso": "YYYY-MM-DD", "slash": "DD/MM/YYYY", "nab": "DD Mon YY"}[kind]
    raise _RowError(row, f"{text[:30]!r} is not a date ({expected})")


def _minor(row: int, text: str, currency: str) -> int:
    """A signed amount in major units (``-1,234.50``, ``+$150``) as exact minor units."""
    found = _AMOUNT.match(text.strip())
    if found is None:
        raise _RowError(row, f"{text.strip()[:30]!r} is not an amount in {currency}")
    fraction = f".{found['fraction']}" if found["fraction"] else ""
    try:  # the one parser of amounts people write: exact, never rounded
        minor = Money.parse(found["digits"].replace(",", "") + fraction, currency).minor
    except MoneyError:
        raise _RowError(row, f"{text.strip()[:30]!r} is not an amount in {currency}") from None
    if minor > 10**13:
        raise _RowError(row, f"{text.strip()[:30]!r} is out of range")
    return -minor if found["sign"] == "-" else minor


def _optional_amount(row: int, text: str, currency: str) -> None:
    """A balance column: checked so a shifted or foreign file is refused, then unused."""
    if text.strip():
        _minor(row, text, currency)


def _text(*parts: str) -> str:
    return _SPACES.sub(" ", " ".join(part.strip() for part in parts if part.strip())).strip()


def _cells(row: int, cells: list[str], *, at_least: int, layout: str) -> None:
    if len(cells) < at_least:
        raise _RowError(row, f"{len(cells)} columns, a {layout} line has at least {at_least}")


def _lower(cells: list[str]) -> list[str]:
    return [cell.strip().lower() for cell in cells]


# --- layouts --------------------------------------------------------------------------------

Rows = list[tuple[int, list[str]]]


def _paymenter(rows: Rows) -> Iterator[_Entry]:
    first_row, header = rows[0]
    if _lower(header) != PAYMENTER_HEADER:
        raise _RowError(first_row, "the header must be exactly " + ",".join(PAYMENTER_HEADER))
    for row, cells in rows[1:]:
        if len(cells) != len(PAYMENTER_HEADER):
            raise _RowError(row, f"{len(cells)} columns, expected {len(PAYMENTER_HEADER)}")
        booked, amount, currency_text, description, reference = cells
        try:
            currency = normalize_currency(currency_text.strip())
        except UnknownCurrencyError:
            raise _RowError(row, f"{currency_text.strip()[:10]!r} is not a currency we invoice in") from None
        yield _Entry(
            row=row,
            booked_on=_date(row, booked, kind="iso"),
            minor=_minor(row, amount, currency),
            currency=currency,
            description=_text(description),
            bank_reference=_text(reference),
        )


def _commbank(rows: Rows) -> Iterator[_Entry]:
    for row, cells in rows:
        if row == rows[0][0] and _lower(cells)[:2] == ["date", "amount"]:
            continue  # a header someone added; the bank's own export has none
        _cells(row, cells, at_least=4, layout="CommBank")
        if len(cells) > 5:
            raise _RowError(row, f"{len(cells)} columns, a CommBank line has 4 or 5")
        _optional_amount(row, cells[3], BANK_STATEMENT_CURRENCY)
        yield _Entry(
            row=row,
            booked_on=_date(row, cells[0], kind="slash"),
            minor=_minor(row, cells[1], BANK_STATEMENT_CURRENCY),
            currency=BANK_STATEMENT_CURRENCY,
            description=_text(cells[2]),
        )


def _nab(rows: Rows) -> Iterator[_Entry]:
    for row, cells in rows:
        if row == rows[0][0] and _lower(cells)[:2] == ["date", "amount"]:
            continue  # the newer export's header
        _cells(row, cells, at_least=7, layout="NAB")
        _optional_amount(row, cells[6], BANK_STATEMENT_CURRENCY)
        merchant = cells[8] if len(cells) > 8 else ""
        yield _Entry(
            row=row,
            booked_on=_date(row, cells[0], kind="nab"),
            minor=_minor(row, cells[1], BANK_STATEMENT_CURRENCY),
            currency=BANK_STATEMENT_CURRENCY,
            description=_text(cells[4], cells[5], merchant),
        )


def _westpac(rows: Rows) -> Iterator[_Entry]:
    first_row, header = rows[0]
    if _lower(header)[: len(WESTPAC_HEADER)] != WESTPAC_HEADER:
        raise _RowError(first_row, "the header must start " + ",".join(WESTPAC_HEADER))
    for row, cells in rows[1:]:
        _cells(row, cells, at_least=6, layout="Westpac")
        debit, credit = cells[3].strip(), cells[4].strip()
        if bool(debit) == bool(credit):
            raise _RowError(row, "exactly one of Debit Amount and Credit Amount must be set")
        _optional_amount(row, cells[5], BANK_STATEMENT_CURRENCY)
        credit_minor = _minor(row, credit, BANK_STATEMENT_CURRENCY) if credit else 0
        debit_minor = _minor(row, debit, BANK_STATEMENT_CURRENCY) if debit else 0
        if credit_minor < 0 or debit_minor < 0:
            raise _RowError(row, "Westpac amounts are unsigned")
        yield _Entry(
            row=row,
            booked_on=_date(row, cells[1], kind="slash"),
            minor=credit_minor or -debit_minor,
            currency=BANK_STATEMENT_CURRENCY,
            description=_text(cells[2]),
            bank_reference=_text(cells[7]) if len(cells) > 7 else "",
        )


def _anz(rows: Rows) -> Iterator[_Entry]:
    for row, cells in rows:
        _cells(row, cells, at_least=3, layout="ANZ")
        yield _Entry(
            row=row,
            booked_on=_date(row, cells[0], kind="slash"),
            minor=_minor(row, cells[1], BANK_STATEMENT_CURRENCY),
            currency=BANK_STATEMENT_CURRENCY,
            description=_text(*cells[2:]),
        )


_LAYOUTS: dict[StatementLayout, Callable[[Rows], Iterator[_Entry]]] = {
    StatementLayout.PAYMENTER: _paymenter,
    StatementLayout.COMMBANK: _commbank,
    StatementLayout.NAB: _nab,
    StatementLayout.WESTPAC: _westpac,
    StatementLayout.ANZ: _anz,
}


def _is_amount(text: str) -> bool:
    return _AMOUNT.match(text.strip()) is not None


def layout_detect(rows: Rows) -> StatementLayout:
    """The layout of a file from its first lines; refuses a file it cannot tell.

    Headers decide where there is one. Without: a ``05 Mar 26`` date is NAB's; a
    ``dd/mm/yyyy`` file is CommBank's when its amounts carry explicit signs (``+150.00``)
    or a fourth column holds a balance, else ANZ's.
    """
    first = _lower(rows[0][1])
    if first == PAYMENTER_HEADER:
        return StatementLayout.PAYMENTER
    if first[: len(WESTPAC_HEADER)] == WESTPAC_HEADER:
        return StatementLayout.WESTPAC
    if first[:2] == ["date", "amount"] and len(first) >= 7:
        return StatementLayout.NAB
    if _NAB_DATE.match(first[0]) and len(first) >= 7:
        return StatementLayout.NAB
    if _SLASH_DATE.match(first[0]):
        sample = [cells for _, cells in rows[:20]]
        signed = any(cells[1].strip()[:1] == "+" for cells in sample if len(cells) > 1)
        balances = all(len(cells) in (4, 5) and _is_amount(cells[3]) for cells in sample)
        if signed or balances:
            return StatementLayout.COMMBANK
        return StatementLayout.ANZ
    raise BankStatementInvalidError(
        "its layout was not recognised (no known header, and no date in the first column). Choose the layout."
    )


# --- the file ---------------------------------------------------------------------------------


def _decode(content: bytes) -> str:
    if b"\x00" in content:
        raise BankStatementInvalidError("it is not a text file")
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return content.decode("cp1252")  # Windows exports
    except UnicodeDecodeError:
        raise BankStatementInvalidError("it is neither UTF-8 nor Windows-1252 text") from None


def _rows(text: str) -> Rows:
    rows: Rows = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        for cells in reader:
            if len(rows) >= MAX_ROWS:
                raise BankStatementTooLargeError(limit_bytes=MAX_BYTES, lines=MAX_ROWS)
            if any(cell.strip() for cell in cells):
                rows.append((reader.line_num, cells))
    except csv.Error as exc:
        raise BankStatementInvalidError(f"line {reader.line_num}: not CSV ({exc})") from None
    return rows


def statement_parse(*, content: bytes, layout: str) -> ParsedStatement:
    """Read a statement file in ``layout`` (or ``auto``): its credit lines, in file order.

    Refuses (nothing read) a file over :data:`MAX_BYTES`, one that is not text or not
    CSV, one whose layout cannot be told, any line that does not fit the layout, and a
    file without a single line.
    """
    if len(content) > MAX_BYTES:
        raise BankStatementTooLargeError(limit_bytes=MAX_BYTES, lines=MAX_ROWS)
    try:
        chosen = StatementLayout(layout)
    except ValueError:
        raise BankStatementInvalidError(f"{layout[:20]!r} is not a layout") from None
    rows = _rows(_decode(content))
    if not rows:
        raise BankStatementInvalidError("the file is empty")
    if chosen is StatementLayout.AUTO:
        chosen = layout_detect(rows)
    try:
        entries = list(_LAYOUTS[chosen](rows))
    except _RowError as exc:
        raise BankStatementInvalidError(f"line {exc.row}: {exc.message} (read as {chosen.value})") from None
    if not entries:
        raise BankStatementInvalidError("it has a header but no transactions")
    seen: Counter[tuple[str, ...]] = Counter()
    lines: list[StatementLine] = []
    debits = 0
    for entry in entries:
        if entry.minor <= 0:
            debits += 1
            continue
        description = entry.description[:DESCRIPTION_MAX_LENGTH]
        reference = entry.bank_reference[:BANK_REFERENCE_MAX_LENGTH]
        key = (
            entry.booked_on.isoformat(),
            str(entry.minor),
            entry.currency,
            normalise(description),
            normalise(reference),
        )
        lines.append(
            StatementLine(
                row=entry.row,
                booked_on=entry.booked_on,
                amount=Money(entry.minor, entry.currency),
                description=description,
                bank_reference=reference,
                occurrence=seen[key],
            )
        )
        seen[key] += 1
    return ParsedStatement(
        layout=chosen,
        lines=tuple(lines),
        debits_skipped=debits,
        rows_read=len(entries),
        sha256=hashlib.sha256(content).hexdigest(),
    )
