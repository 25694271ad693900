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

from django.db.models import Q, QuerySet

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


def rates_in_force(*, code: TaxCode, country: str, on: dt.date) -> QuerySet[TaxRate]:
    """The rate rows of ``code`` in ``country`` in force on ``on``, the current one first:
    the one definition of "in force", for :func:`rate_on` and for reads that fetch the
    rate together with other data (``o2s.selectors.o2s_invoice_context``)."""
    return (
        TaxRate.objects.filter(code=code, country=country, effective_from__lte=on)
        .filter(Q(effective_to__isnull=True) | Q(effective_to__gt=on))
        .order_by("-effective_from")
    )


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
        row = rates_in_force(code=code, country=country, on=on).first()
        rate = row.rate if row is not None else None
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
