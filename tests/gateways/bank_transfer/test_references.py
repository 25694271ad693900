"""Payment references: ISO 11649 check digits catch every single-character slip of ours,
and a reference is found in a bank's narrative however the payer spaced or cased it."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gateways.bank_transfer.references import (
    InvalidInvoiceNumberError,
    ReferenceStatus,
    ScanOutcome,
    check_digits,
    checksum_valid,
    invoice_number_from_body,
    payment_reference_for,
    reference_parse,
    reference_print,
    references_find,
)

ALPHANUMERIC = string.ascii_uppercase + string.digits

prefixes = st.text(alphabet=string.ascii_uppercase, min_size=1, max_size=11)
years = st.integers(min_value=2000, max_value=2099)
serials = st.integers(min_value=1, max_value=999_999)


@st.composite
def invoice_numbers(draw: st.DrawFn, serial: st.SearchStrategy[int] = serials) -> str:
    """Numbers as ``invoices.numbering.format_invoice_number`` makes them, letters-only prefix."""
    return f"{draw(prefixes)}-{draw(years)}-{draw(serial):06d}"


def _substitutions(reference: str) -> list[str]:
    return [
        reference[:index] + char + reference[index + 1 :]
        for index in range(len(reference))
        for char in ALPHANUMERIC
        if char != reference[index]
    ]


def _transpositions(reference: str) -> list[str]:
    return [
        reference[:index] + reference[index + 1] + reference[index] + reference[index + 2 :]
        for index in range(len(reference) - 1)
        if reference[index] != reference[index + 1]
    ]


def _expected(mutated: str) -> set[ScanOutcome]:
    """A slip in ``RF`` or the check digits' digit-ness leaves no reference to read;
    anywhere else it leaves a mistyped one. Either way it is never read as valid: when the
    invoice prefix itself starts ``RF`` and digits (``RF-2000-000001``), the body after a
    broken ``RF`` may still look like a reference (written without spaces), a mistyped one."""
    if mutated[:2] == "RF" and mutated[2:4].isdigit():
        return {ScanOutcome.MISTYPED}
    if re.search(r"RF\d\d", mutated[2:]):
        return {ScanOutcome.NONE, ScanOutcome.MISTYPED}
    return {ScanOutcome.NONE}


# --- the format -------------------------------------------------------------------------


def test_the_reference_of_an_invoice_number_is_rf_check_digits_and_the_number_without_hyphens() -> None:
    reference = payment_reference_for("INV-2026-000034")

    assert reference == f"RF{check_digits('INV2026000034')}INV2026000034"
    assert checksum_valid(reference)
    assert reference_print(reference) == f"{reference[:4]} INV2 0260 0003 4"


def test_the_check_digits_are_those_of_iso_11649s_own_example() -> None:
    assert check_digits("539007547034") == "18"
    assert checksum_valid("RF18539007547034")
    assert not checksum_valid("RF18539007547043")


@pytest.mark.parametrize(
    "number",
    [
        "INV-2026-34",
        "INV2026000034",
        "INV-1999-000034",
        "IN1-2026-000034",
        "inv-2026-000034",
        "ABCDEFGHIJKL-2026-000001",
    ],
)
def test_a_number_a_reference_cannot_carry_is_refused(number: str) -> None:
    with pytest.raises(InvalidInvoiceNumberError):
        payment_reference_for(number)


@given(invoice_numbers(serial=st.integers(min_value=0, max_value=10**9)))
def test_number_to_reference_to_number_round_trips(number: str) -> None:
    assume(len(number) - 2 <= 21)  # longer numbers are refused (tested above)
    reference = payment_reference_for(number)

    assert len(reference) <= 25
    assert invoice_number_from_body(reference[4:]) == number
    for typed in (reference, reference_print(reference), reference_print(reference).lower(), f"  {reference}  "):
        found = reference_parse(typed)
        assert found is not None
        assert (found.status, found.invoice_number, found.reference) == (ReferenceStatus.VALID, number, reference)
    scan = references_find(f"Transfer from J Citizen {reference_print(reference).lower()} thank you")
    assert scan.outcome is ScanOutcome.VALID
    assert [item.invoice_number for item in scan.valid] == [number]


# --- what the check digits catch ------------------------------------------------------------


@given(invoice_numbers())
def test_every_single_character_substitution_is_caught_as_mistyped(number: str) -> None:
    reference = payment_reference_for(number)
    for mutated in _substitutions(reference):
        for text in (mutated, reference_print(mutated)):
            scan = references_find(f"PAYMENT FROM A PAYER {text} THANKS")
            assert scan.outcome in _expected(mutated), (reference, mutated)
            found = reference_parse(text)
            assert found is None or found.status is ReferenceStatus.MISTYPED, (reference, mutated)


@given(invoice_numbers())
def test_every_adjacent_transposition_is_caught_as_mistyped(number: str) -> None:
    reference = payment_reference_for(number)
    for mutated in _transpositions(reference):
        for text in (mutated, reference_print(mutated)):
            scan = references_find(f"PAYMENT FROM A PAYER {text} THANKS")
            assert scan.outcome in _expected(mutated), (reference, mutated)
            found = reference_parse(text)
            assert found is None or found.status is ReferenceStatus.MISTYPED, (reference, mutated)


@given(invoice_numbers(serial=st.integers(min_value=1_000_000, max_value=10**9)))
def test_a_slip_in_a_long_serial_that_keeps_its_shape_is_never_read_as_valid(number: str) -> None:
    """Past six digits a shorter reading may have an invoice number's shape too; a check
    passing by chance on it makes the text ambiguous (for staff), never valid. (A slip
    that breaks the whole number's shape is the documented residual risk.)"""
    assume(len(number) - 2 <= 21)
    reference = payment_reference_for(number)
    for mutated in [*_substitutions(reference), *_transpositions(reference)]:
        if mutated[:2] != "RF" or not mutated[2:4].isdigit() or not invoice_number_from_body(mutated[4:]):
            continue
        scan = references_find(f"PAYMENT {reference_print(mutated)} THANKS")
        assert scan.outcome in (ScanOutcome.MISTYPED, ScanOutcome.AMBIGUOUS), (reference, mutated)


@given(
    st.text(alphabet=ALPHANUMERIC, min_size=1, max_size=21),
    st.data(),
)
def test_the_check_digits_alone_catch_every_same_kind_slip_of_any_reference(body: str, data: st.DataObject) -> None:
    """ISO 7064 MOD 97-10's guarantee: a digit for a digit, a letter for a letter, and two
    neighbours of the same kind swapped, whatever the body."""
    reference = f"RF{check_digits(body)}{body}"
    assert checksum_valid(reference)
    index = data.draw(st.integers(min_value=2, max_value=len(reference) - 1))
    same_kind = string.digits if reference[index].isdigit() else string.ascii_uppercase
    char = data.draw(st.sampled_from([c for c in same_kind if c != reference[index]]))
    assert not checksum_valid(reference[:index] + char + reference[index + 1 :])
    if index + 1 < len(reference) and reference[index + 1] in same_kind and reference[index + 1] != reference[index]:
        swapped = reference[:index] + reference[index + 1] + reference[index] + reference[index + 2 :]
        assert not checksum_valid(swapped)


def test_a_letter_digit_swap_the_check_digits_miss_is_caught_by_the_numbers_shape() -> None:
    """M = 22 = 11 x 2: swapping ``M2`` keeps the remainder modulo 97 (a known blind spot of
    MOD 97-10 over letters); the body is then no invoice number of ours."""
    reference = payment_reference_for("ACM-2026-000001")
    swapped = reference.replace("ACM2", "AC2M")

    assert checksum_valid(swapped)
    found = reference_parse(swapped)
    assert found is not None
    assert found.status is ReferenceStatus.MISTYPED
    assert references_find(f"PAID {swapped}").outcome is ScanOutcome.MISTYPED


# --- finding references in a bank's narrative -------------------------------------------------


REF = payment_reference_for("INV-2026-000034")
OTHER = payment_reference_for("INV-2026-000035")


@pytest.mark.parametrize(
    "narrative",
    [
        f"Direct Credit 301500 J CITIZEN {REF}",
        f"TRANSFER FROM J CITIZEN {reference_print(REF)}",
        f"transfer from j citizen {reference_print(REF).lower()} invoice",
        f"{REF[:4]}  INV2026 000034 J CITIZEN",
        f"REF: {REF}. Thanks",
        f"{REF} {REF}",  # the same reference twice is still one
        f"RF {REF[2:]}",
        f"{REF[:4]}-INV-2026-000034 Citizen",
    ],
)
def test_a_reference_is_found_however_it_was_spaced_or_cased(narrative: str) -> None:
    scan = references_find(narrative)

    assert scan.outcome is ScanOutcome.VALID
    assert scan.reference is not None
    assert scan.reference.invoice_number == "INV-2026-000034"


@pytest.mark.parametrize(
    ("narrative", "outcome"),
    [
        ("INTEREST CREDIT", ScanOutcome.NONE),
        ("SURF12 LESSONS", ScanOutcome.NONE),  # RF inside a word
        ("RF12 MONTHS OF HOSTING", ScanOutcome.MISTYPED),
        (f"{REF} AND {OTHER}", ScanOutcome.AMBIGUOUS),
        (f"{REF} AND {OTHER[:-1]}6", ScanOutcome.AMBIGUOUS),  # a valid one beside a mistyped invoice number
        (f"{REF[:-1]}5", ScanOutcome.MISTYPED),
    ],
)
def test_what_a_narrative_adds_up_to(narrative: str, outcome: ScanOutcome) -> None:
    assert references_find(narrative).outcome is outcome


def test_a_mistyped_reference_is_reported_as_read() -> None:
    typo = REF[:-1] + "5"

    scan = references_find(f"J CITIZEN {reference_print(typo)} THANKS")

    assert scan.reference is not None
    assert (scan.reference.reference, scan.reference.status, scan.reference.invoice_number) == (
        typo,
        ReferenceStatus.MISTYPED,
        "",
    )
    assert scan.reference.looks_like_invoice


@pytest.mark.parametrize("typed", ["", "INV-2026-000034", "hello", "RFXX INV2", "RF1"])
def test_staff_input_that_is_no_reference_parses_to_nothing(typed: str) -> None:
    assert reference_parse(typed) is None
