"""Reading statement files: each layout, auto-detection, credits only, stable identities,
and garbage refused whole with the line named (never half-read, never a crash)."""

from __future__ import annotations

from datetime import date

import pytest

from gateways.bank_transfer.errors import BankStatementInvalidError, BankStatementTooLargeError
from gateways.bank_transfer.statements import (
    MAX_BYTES,
    ParsedStatement,
    StatementLayout,
    statement_parse,
)
from paymenter.money import Money

PAYMENTER = b"""date,amount,currency,description,bank_reference
2026-03-05,150.00,AUD,TRANSFER FROM J CITIZEN RF76 INV2 0260 0003 4,FT26064001
2026-03-05,-12.00,AUD,ACCOUNT FEE,FT26064002
2026-03-06,"1,234.5",aud,"Payment, with a comma",
"""

COMMBANK = b"""05/03/2026,"+150.00","Direct Credit 301500 J CITIZEN RF76INV2026000034","+1150.00"
05/03/2026,"-20.00","Transfer to other Bank NetBank Rent","+1130.00"
6/03/2026,"+0.12","Credit Interest","+1130.12"
"""

NAB_OLD = b"""05 Mar 26,150.00,,,TRANSFER CREDIT,ONLINE J CITIZEN RF76INV2026000034,1150.00
05-Mar-26,-20.00,,,MISCELLANEOUS DEBIT,V1234 BUNNINGS,1130.00
"""

NAB_NEW = b"""Date,Amount,Account Number,,Transaction Type,Transaction Details,Balance,Category,Merchant Name
05 Mar 26,150.00,083-004 123456789,,INTER-BANK CREDIT,J CITIZEN RF76INV2026000034,1150.00,Transfers in,
06 Mar 2026,-4.50,083-004 123456789,,EFTPOS DEBIT,V1234 CAFE,1145.50,Dining,Cafe Hobart
"""

WESTPAC = b"""Bank Account,Date,Narrative,Debit Amount,Credit Amount,Balance,Categories,Serial
032000123456,05/03/2026,DEPOSIT ONLINE 1234567 J CITIZEN RF76INV2026000034,,150.00,1150.00,DEP,
032000123456,05/03/2026,WITHDRAWAL-OSKO PAYMENT RENT,20.00,,1130.00,PAYMENT,
032000123456,6/03/2026,DEPOSIT CHEQUE,,55.00,1185.00,DEP,000123
"""

ANZ = b"""05/03/2026,"150.00","ANZ INTERNET BANKING FUNDS TFER J CITIZEN RF76INV2026000034"
05/03/2026,"-20.00","PAYMENT TO RENT"
06/03/26,"55.00","TRANSFER FROM A PAYER","REF 123","A PAYER PTY LTD"
"""


def _parse(content: bytes, layout: str = "auto") -> ParsedStatement:
    return statement_parse(content=content, layout=layout)


def _credits(parsed: ParsedStatement) -> list[tuple[date, Money, str, str]]:
    return [(line.booked_on, line.amount, line.description, line.bank_reference) for line in parsed.lines]


@pytest.mark.parametrize("layout", ["auto", "paymenter"])
def test_the_paymenter_layout(layout: str) -> None:
    parsed = _parse(PAYMENTER, layout)

    assert parsed.layout is StatementLayout.PAYMENTER
    assert _credits(parsed) == [
        (date(2026, 3, 5), Money(15000, "AUD"), "TRANSFER FROM J CITIZEN RF76 INV2 0260 0003 4", "FT26064001"),
        (date(2026, 3, 6), Money(123450, "AUD"), "Payment, with a comma", ""),
    ]
    assert (parsed.debits_skipped, parsed.rows_read) == (1, 3)


@pytest.mark.parametrize("layout", ["auto", "commbank"])
def test_the_commbank_layout(layout: str) -> None:
    parsed = _parse(COMMBANK, layout)

    assert parsed.layout is StatementLayout.COMMBANK
    assert _credits(parsed) == [
        (date(2026, 3, 5), Money(15000, "AUD"), "Direct Credit 301500 J CITIZEN RF76INV2026000034", ""),
        (date(2026, 3, 6), Money(12, "AUD"), "Credit Interest", ""),
    ]
    assert parsed.debits_skipped == 1


@pytest.mark.parametrize(
    ("content", "layout"), [(NAB_OLD, "auto"), (NAB_OLD, "nab"), (NAB_NEW, "auto"), (NAB_NEW, "nab")]
)
def test_the_nab_layouts_with_and_without_header(content: bytes, layout: str) -> None:
    parsed = _parse(content, layout)

    assert parsed.layout is StatementLayout.NAB
    assert [(line.booked_on, line.amount) for line in parsed.lines] == [(date(2026, 3, 5), Money(15000, "AUD"))]
    assert "J CITIZEN RF76INV2026000034" in parsed.lines[0].description
    assert parsed.debits_skipped == 1


@pytest.mark.parametrize("layout", ["auto", "westpac"])
def test_the_westpac_layout(layout: str) -> None:
    parsed = _parse(WESTPAC, layout)

    assert parsed.layout is StatementLayout.WESTPAC
    assert _credits(parsed) == [
        (date(2026, 3, 5), Money(15000, "AUD"), "DEPOSIT ONLINE 1234567 J CITIZEN RF76INV2026000034", ""),
        (date(2026, 3, 6), Money(5500, "AUD"), "DEPOSIT CHEQUE", "000123"),
    ]
    assert parsed.debits_skipped == 1


@pytest.mark.parametrize("layout", ["auto", "anz"])
def test_the_anz_layout(layout: str) -> None:
    parsed = _parse(ANZ, layout)

    assert parsed.layout is StatementLayout.ANZ
    assert _credits(parsed) == [
        (date(2026, 3, 5), Money(15000, "AUD"), "ANZ INTERNET BANKING FUNDS TFER J CITIZEN RF76INV2026000034", ""),
        (date(2026, 3, 6), Money(5500, "AUD"), "TRANSFER FROM A PAYER REF 123 A PAYER PTY LTD", ""),
    ]


def test_identical_lines_in_one_file_are_distinct_and_stable_across_imports() -> None:
    content = b"05/03/2026,+10.00,TRANSFER RF12,+10.00\n05/03/2026,+10.00,TRANSFER RF12,+20.00\n"

    first, again = _parse(content, "commbank"), _parse(content, "commbank")

    assert [line.occurrence for line in first.lines] == [0, 1]
    assert len({line.fingerprint for line in first.lines}) == 2
    assert [line.fingerprint for line in first.lines] == [line.fingerprint for line in again.lines]


def test_a_period_that_overlaps_gives_the_shared_lines_the_same_identity() -> None:
    march = b"05/03/2026,+10.00,A,+10.00\n06/03/2026,+20.00,B,+30.00\n"
    overlapping = b"06/03/2026,+20.00,B,+30.00\n07/03/2026,+5.00,C,+35.00\n"

    assert _parse(march, "commbank").lines[1].fingerprint == _parse(overlapping, "commbank").lines[0].fingerprint


def test_a_windows_1252_export_and_a_byte_order_mark_are_read() -> None:
    parsed = _parse("\ufeff05/03/2026,+10.00,CAFÉ PAYMENT,+10.00\n".encode("utf-8"), "commbank")
    legacy = _parse("05/03/2026,+10.00,CAFÉ PAYMENT,+10.00\n".encode("cp1252"), "commbank")

    assert parsed.lines[0].description == legacy.lines[0].description == "CAFÉ PAYMENT"


@pytest.mark.parametrize(
    ("content", "layout", "message"),
    [
        (b"", "auto", "empty"),
        (b"\n\n  \n", "auto", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "auto", "not a text file"),
        (b"hello world\nthis is not a statement\n", "auto", "not recognised"),
        (b"date,amount,currency,description,bank_reference\n", "auto", "no transactions"),
        (b"date,amount,currency,description,bank_reference\n2026-03-05,abc,AUD,x,\n", "auto", "line 2"),
        (b"date,amount,currency,description,bank_reference\n2026-03-05,1.005,AUD,x,\n", "auto", "not an amount"),
        (b"date,amount,currency,description,bank_reference\n2026-03-05,1.00,XYZ,x,\n", "auto", "currency"),
        (b"date,amount,currency,description,bank_reference\n05/03/2026,1.00,AUD,x,\n", "auto", "not a date"),
        (b"date,amount,currency,description,bank_reference\n2026-02-30,1.00,AUD,x,\n", "auto", "not a date"),
        (b"date,amount,currency,description\n2026-03-05,1.00,AUD,x\n", "paymenter", "header"),
        (b'05/03/2026,+10.00,"unterminated\n', "commbank", "not CSV"),
        (b"05/03/2026,+10.00,A,+10.00\n05/03/2026,+10.00\n", "commbank", "line 2"),
        (b"05/03/2026,+10.00,A,garbage\n", "commbank", "not an amount"),
        (COMMBANK, "westpac", "header"),
        (COMMBANK, "nab", "columns"),
        (WESTPAC, "commbank", "columns"),
        (WESTPAC, "anz", "not a date"),
        (COMMBANK, "bogus", "not a layout"),
    ],
)
def test_a_file_that_is_not_a_statement_is_refused_whole(content: bytes, layout: str, message: str) -> None:
    with pytest.raises(BankStatementInvalidError) as refused:
        _parse(content, layout)

    assert message in refused.value.message
    assert refused.value.code == "bank_statement_invalid"


def test_a_file_over_the_size_cap_is_refused_unread() -> None:
    with pytest.raises(BankStatementTooLargeError):
        _parse(b"05/03/2026,+10.00,A,+10.00\n" * (MAX_BYTES // 27 + 1), "commbank")
