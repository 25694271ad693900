"""GST: which treatment applies, at which rate, and the arithmetic of priced lines.

Prices are GST-exclusive. Each line's GST is ``round_half_up(subtotal x rate)`` (per-line
rounding, see docs/money-and-gst.md); the invoice's GST is the sum of its lines' GST and
its total the sum of its lines' totals, so no cent is lost or created between lines and
the invoice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection

from invoices.errors import TaxRateMissingError
from invoices.models import TaxCode, TaxRate
from paymenter.money import round_half_up

ZERO_RATE = Decimal("0.0000")


@dataclass(frozen=True)
class TaxTreatment:
    code: TaxCode
    rate: Decimal


@dataclass(frozen=True)
class LineAmounts:
    subtotal_minor: int
    tax_minor: int
    total_minor: int


def tax_code_for(*, buyer_country: str, seller_country: str = "AU") -> TaxCode:
    """Australian customers pay GST; supplies to customers abroad are GST-free exports."""
    if buyer_country == seller_country == "AU":
        return TaxCode.GST
    return TaxCode.GST_FREE_EXPORT


_TAX_RATE_TABLE = TaxRate._meta.db_table
# The one definition of "the rate in force": the row of (code, country) whose period
# covers the day, the latest start first. Plain SQL so that reads which fetch the rate
# together with other data embed it as a subquery (``rate_in_force_sql``).
RATE_IN_FORCE_SQL = (
    f"SELECT rate FROM {_TAX_RATE_TABLE} WHERE code = %s AND country = %s AND effective_from <= %s "  # noqa: S608 - constant table
    "AND (effective_to IS NULL OR effective_to > %s) ORDER BY effective_from DESC LIMIT 1"
)


def rate_in_force_sql(*, code: TaxCode, country: str, on: dt.date) -> tuple[str, list[Any]]:
    """The rate in force on ``on`` (or NULL) as a scalar subquery and its parameters, to
    embed in another read (``o2s.selectors.o2s_invoice_context``); read the value back
    into a :class:`KnownRate`."""
    return RATE_IN_FORCE_SQL, [str(code), country, on, on]


@dataclass(frozen=True)
class KnownRate:
    """A rate already read with other data (one round trip instead of two); ``rate`` is
    ``None`` when no row of ``code`` in ``country`` was in force on ``on``."""

    code: TaxCode
    country: str
    on: dt.date
    rate: Decimal | None


def rate_on(*, code: TaxCode, country: str, on: dt.date, known: KnownRate | None = None) -> Decimal:
    """The rate row in force on ``on``; GST-free treatments are zero-rated. ``known`` is
    used instead of a query when it answers exactly this question (code, country, day)."""
    if code == TaxCode.GST_FREE_EXPORT:
        return ZERO_RATE
    if known is not None and (known.code, known.country, known.on) == (code, country, on):
        rate = known.rate
    else:
        sql, params = rate_in_force_sql(code=code, country=country, on=on)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        rate = Decimal(row[0]) if row is not None else None
    if rate is None:
        raise TaxRateMissingError(code=code, country=country)
    return rate


def treatment_for(
    *, buyer_country: str, seller_country: str, on: dt.date, known: KnownRate | None = None
) -> TaxTreatment:
    code = tax_code_for(buyer_country=buyer_country, seller_country=seller_country)
    return TaxTreatment(code=code, rate=rate_on(code=code, country=seller_country, on=on, known=known))


def line_amounts(*, quantity: int, unit_amount_minor: int, rate: Decimal) -> LineAmounts:
    subtotal = quantity * unit_amount_minor
    tax = round_half_up(Decimal(subtotal) * rate)
    return LineAmounts(subtotal_minor=subtotal, tax_minor=tax, total_minor=subtotal + tax)


def invoice_amounts(lines: Sequence[LineAmounts]) -> LineAmounts:
    return LineAmounts(
        subtotal_minor=sum(line.subtotal_minor for line in lines),
        tax_minor=sum(line.tax_minor for line in lines),
        total_minor=sum(line.total_minor for line in lines),
    )
