"""Money: integer minor units plus an ISO 4217 currency; never a float.

``round_half_up`` is the ONE place in the code base where a fractional amount becomes a
whole number of minor units (see docs/money-and-gst.md for why half-up, per line).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Self

from paymenter.errors import PaymenterError

# ISO 4217 minor-unit exponents for the currencies we may invoice in.
CURRENCY_EXPONENTS: dict[str, int] = {
    "AUD": 2,
    "NZD": 2,
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "CAD": 2,
    "SGD": 2,
    "JPY": 0,
}

# Largest amount we accept anywhere: 10^15 minor units (fits BIGINT with room for sums).
MAX_MINOR = 10**15


class MoneyError(PaymenterError):
    pass


class UnknownCurrencyError(MoneyError):
    def __init__(self, currency: object) -> None:
        super().__init__(
            code="unknown_currency",
            message=f"Unknown or unsupported currency {currency!r}; use an ISO 4217 code.",
            fields={"currency": ["unknown currency"]},
        )


class CurrencyMismatchError(MoneyError):
    status_code = 422

    def __init__(self, left: str, right: str) -> None:
        super().__init__(
            code="currency_mismatch",
            message=f"Amounts in {left} and {right} cannot be combined.",
        )


class InvalidAmountError(MoneyError):
    def __init__(self, text: object, currency: str) -> None:
        super().__init__(
            code="invalid_amount",
            message=f"{str(text)[:40]!r} is not an amount of {currency}: digits, at most "
            f"{CURRENCY_EXPONENTS.get(currency, 2)} decimal places, no sign or separators.",
            fields={"amount": ["not an amount"]},
        )


def normalize_currency(currency: object) -> str:
    """Validate an ISO 4217 code we support; returns it upper-cased."""
    if not isinstance(currency, str) or currency.upper() not in CURRENCY_EXPONENTS:
        raise UnknownCurrencyError(currency)
    return currency.upper()


def round_half_up(value: Decimal) -> int:
    """Round a fractional number of minor units to a whole one, halves away from zero.

    This is the only rounding function for money. GST is rounded per invoice line
    (docs/money-and-gst.md); everything else is exact integer arithmetic.
    """
    if not isinstance(value, Decimal):
        raise TypeError("round_half_up takes a Decimal, never a float")
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount: ``minor`` units of ``currency`` (cents for AUD, yen for JPY)."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.minor, bool) or not isinstance(self.minor, int):
            raise TypeError("Money.minor must be an int of minor units")
        object.__setattr__(self, "currency", normalize_currency(self.currency))
        if abs(self.minor) > MAX_MINOR:
            raise MoneyError(code="amount_out_of_range", message="Amount is out of the supported range.")

    @classmethod
    def zero(cls, currency: str) -> Self:
        return cls(0, currency)

    def _check(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError("Money only combines with Money")
        if other.currency != self.currency:
            raise CurrencyMismatchError(self.currency, other.currency)

    def __add__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.minor - other.minor, self.currency)

    def __mul__(self, quantity: int) -> Money:
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            raise TypeError("Money can only be multiplied by a whole quantity")
        return Money(self.minor * quantity, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._check(other)
        return self.minor < other.minor

    def __le__(self, other: Money) -> bool:
        self._check(other)
        return self.minor <= other.minor

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __str__(self) -> str:
        return self.format()

    @classmethod
    def parse(cls, text: str, currency: str) -> Money:
        """An amount typed by a person in major units (``"12.50"`` AUD -> 1250 minor units):
        plain digits and at most the currency's decimal places, exactly - never rounded."""
        currency = normalize_currency(currency)
        cleaned = text.strip()
        whole, _, fraction = cleaned.partition(".")
        exponent = CURRENCY_EXPONENTS[currency]
        if not whole.isdigit() or not whole.isascii() or len(fraction) > exponent:
            raise InvalidAmountError(text, currency)
        if fraction and not (fraction.isdigit() and fraction.isascii()):
            raise InvalidAmountError(text, currency)
        minor = int(whole) * 10**exponent + int(fraction.ljust(exponent, "0") or 0)
        if minor > MAX_MINOR:
            raise InvalidAmountError(text, currency)
        return cls(minor, currency)

    @property
    def exponent(self) -> int:
        return CURRENCY_EXPONENTS[self.currency]

    def as_decimal(self) -> Decimal:
        """The amount in major units, exact (for display only)."""
        return Decimal(self.minor).scaleb(-self.exponent)

    def format(self) -> str:
        return f"{self.currency} {self.as_decimal():,.{self.exponent}f}"
