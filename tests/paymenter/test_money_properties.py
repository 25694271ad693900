"""Properties of ``Money`` and of ``round_half_up``, the one rounding function for money."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paymenter.money import CURRENCY_EXPONENTS, MAX_MINOR, CurrencyMismatchError, Money, MoneyError, round_half_up

CURRENCIES = sorted(CURRENCY_EXPONENTS)
# A third of the range, so that sums of three amounts stay inside ``MAX_MINOR``.
minor_units = st.integers(min_value=-(MAX_MINOR // 3), max_value=MAX_MINOR // 3)
currencies = st.sampled_from(CURRENCIES)
# Fractional minor units as pricing produces them: a BIGINT-sized amount times a rate.
fractional = st.decimals(min_value=-(10**16), max_value=10**16, places=6, allow_nan=False, allow_infinity=False)


@st.composite
def amounts_in_one_currency(draw: st.DrawFn, count: int) -> list[Money]:
    currency = draw(currencies)
    return [Money(draw(minor_units), currency) for _ in range(count)]


@st.composite
def two_currencies(draw: st.DrawFn) -> tuple[str, str]:
    left = draw(currencies)
    right = draw(currencies.filter(lambda code: code != left))
    return left, right


# --- Money -----------------------------------------------------------------------------


@given(amounts_in_one_currency(3))
def test_addition_is_associative_and_commutative(amounts: list[Money]) -> None:
    a, b, c = amounts
    assert (a + b) + c == a + (b + c)
    assert a + b == b + a
    assert (a + b).minor == a.minor + b.minor


@given(amounts_in_one_currency(3))
def test_subtraction_undoes_addition_exactly(amounts: list[Money]) -> None:
    a, b, c = amounts
    assert (a + b) - b == a
    assert (a - b) - c == a - (b + c)
    assert a - a == Money.zero(a.currency)
    assert -(a - b) == b - a


@given(amounts_in_one_currency(1), st.integers(min_value=0, max_value=3))
def test_multiplying_by_a_quantity_is_repeated_addition(amounts: list[Money], quantity: int) -> None:
    (a,) = amounts
    total = Money.zero(a.currency)
    for _ in range(quantity):
        total += a
    assert a * quantity == total


@given(two_currencies(), minor_units, minor_units)
def test_mixing_currencies_raises(pair: tuple[str, str], left_minor: int, right_minor: int) -> None:
    left, right = Money(left_minor, pair[0]), Money(right_minor, pair[1])
    for combine in (
        lambda: left + right,
        lambda: left - right,
        lambda: left < right,
        lambda: left <= right,
        lambda: left > right,
    ):
        with pytest.raises(CurrencyMismatchError) as caught:
            combine()
        assert caught.value.code == "currency_mismatch"


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15), currencies)
def test_a_float_amount_is_refused(value: float, currency: str) -> None:
    with pytest.raises(TypeError):
        Money(value, currency)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [True, False])
def test_a_bool_amount_is_refused(value: bool) -> None:
    with pytest.raises(TypeError):
        Money(value, "AUD")


@pytest.mark.parametrize("factor", [1.0, 2.5, True, Decimal(2), "2"])
def test_only_whole_int_quantities_multiply(factor: Any) -> None:
    with pytest.raises(TypeError):
        Money(100, "AUD") * factor


@pytest.mark.parametrize("other", [1, 1.0, Decimal(1)])
def test_money_only_combines_with_money(other: Any) -> None:
    with pytest.raises(TypeError):
        Money(100, "AUD") + other


def test_amounts_beyond_the_supported_range_are_refused() -> None:
    assert Money(MAX_MINOR, "AUD").minor == MAX_MINOR
    with pytest.raises(MoneyError, match="out of the supported range"):
        Money(MAX_MINOR + 1, "AUD")
    with pytest.raises(MoneyError, match="out of the supported range"):
        Money(MAX_MINOR, "AUD") + Money(1, "AUD")


@given(minor_units, currencies)
def test_currency_code_is_normalised_and_formatting_is_exact(minor: int, currency: str) -> None:
    money = Money(minor, currency.lower())
    assert money.currency == currency
    assert money.as_decimal().scaleb(money.exponent) == minor
    assert money.format().startswith(f"{currency} ")


# --- round_half_up ---------------------------------------------------------------------


@given(fractional)
def test_rounding_is_within_half_a_unit_of_the_exact_value(value: Decimal) -> None:
    rounded = round_half_up(value)
    assert isinstance(rounded, int)
    assert abs(Decimal(rounded) - value) <= Decimal("0.5")


@given(st.integers(min_value=-(10**16), max_value=10**16))
def test_halves_round_away_from_zero(whole: int) -> None:
    half = Decimal(whole) + Decimal("0.5") if whole >= 0 else Decimal(whole) - Decimal("0.5")
    assert round_half_up(half) == (whole + 1 if whole >= 0 else whole - 1)
    # and it is symmetric: the sign never changes the magnitude
    assert round_half_up(-half) == -round_half_up(half)


def test_rounding_examples() -> None:
    cases = {"0.4999": 0, "0.5": 1, "1.5": 2, "2.5": 3, "-0.5": -1, "-2.5": -3, "-0.4999": 0, "599.7": 600}
    assert {text: round_half_up(Decimal(text)) for text in cases} == cases


@given(st.integers(min_value=-(10**18), max_value=10**18))
def test_rounding_is_the_identity_on_whole_numbers(whole: int) -> None:
    assert round_half_up(Decimal(whole)) == whole
    assert round_half_up(Decimal(round_half_up(Decimal(whole)))) == whole


@given(fractional)
def test_rounding_is_idempotent(value: Decimal) -> None:
    once = round_half_up(value)
    assert round_half_up(Decimal(once)) == once


@given(fractional, fractional)
def test_rounding_is_monotonic(a: Decimal, b: Decimal) -> None:
    low, high = sorted((a, b))
    assert round_half_up(low) <= round_half_up(high)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_rounding_refuses_a_float(value: float) -> None:
    with pytest.raises(TypeError):
        round_half_up(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [1, "1.5"])
def test_rounding_refuses_anything_but_a_decimal(value: object) -> None:
    with pytest.raises(TypeError):
        round_half_up(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [("12.50", "AUD", 1250), ("0.05", "AUD", 5), ("7", "AUD", 700), (" 1234 ", "JPY", 1234), ("1.5", "USD", 150)],
)
def test_amounts_people_write_parse_exactly(text: str, currency: str, minor: int) -> None:
    assert Money.parse(text, currency) == Money(minor, currency)


@pytest.mark.parametrize(
    ("text", "currency"),
    [("1.005", "AUD"), ("1.5", "JPY"), ("-1", "AUD"), ("1e3", "AUD"), ("1,000", "AUD"), ("", "AUD"), ("١٢", "AUD")],
)
def test_an_amount_that_is_not_exact_in_minor_units_is_refused_never_rounded(text: str, currency: str) -> None:
    with pytest.raises(MoneyError):
        Money.parse(text, currency)
