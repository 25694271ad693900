"""Pricing an invoice: lines, GST per line and totals, computed from stored data only.

Nothing here writes: issuing, previewing and re-pricing a draft all call
:func:`invoice_price`, so what O2S previews is what an issued invoice charges. Totals, tax
and status are never taken from a caller (docs/money-and-gst.md).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils import timezone

from billing.models import Customer, TaxTreatment
from invoices import tax
from invoices.errors import (
    InvalidInvoiceError,
)
from invoices.models import TaxCode
from paymenter.card_numbers import card_numbers_refuse
from paymenter.money import MAX_MINOR, CurrencyMismatchError, normalize_currency

MAX_LINES = 200


MAX_QUANTITY = 1_000_000


MAX_DESCRIPTION = 500


@dataclass(frozen=True)
class InvoiceLineInput:
    """What a caller may say about a line: never its tax or totals.

    ``product_code`` names the catalogue product the line bills (stored on the line);
    ``tax_treatment`` is the product's treatment: ``gst_free`` makes the line GST-free
    whoever the buyer is, ``standard`` (or ``None``) follows the buyer's country.
    """

    description: str
    quantity: int
    unit_amount_minor: int
    currency: str | None = None
    period_start: dt.date | None = None
    period_end: dt.date | None = None
    product_code: str | None = None
    tax_treatment: TaxTreatment | None = None


@dataclass(frozen=True)
class PricedLine:
    position: int
    source: InvoiceLineInput
    tax_code: str
    tax_rate: Any
    amounts: tax.LineAmounts


@dataclass(frozen=True)
class PricedInvoice:
    currency: str
    tax_code: str
    lines: tuple[PricedLine, ...]
    totals: tax.LineAmounts
    on_date: dt.date = field(compare=False)


def seller_today() -> dt.date:
    """Invoice dates are calendar dates in the seller's time zone."""
    return timezone.now().astimezone(zoneinfo.ZoneInfo(settings.SELLER_TIME_ZONE)).date()


def _validate_lines(lines: Sequence[InvoiceLineInput], currency: str) -> None:
    # first: a description holding a card number is refused, 400 ``card_number_not_allowed``
    # naming ``lines.<i>.description`` (docs/security.md), whoever called
    card_numbers_refuse({"lines": [{"description": line.description} for line in lines]})
    errors: dict[str, list[str]] = {}
    if not lines:
        errors["lines"] = ["an invoice needs at least one line"]
    elif len(lines) > MAX_LINES:
        errors["lines"] = [f"at most {MAX_LINES} lines"]
    for index, line in enumerate(lines[:MAX_LINES]):
        prefix = f"lines[{index}]"
        if not isinstance(line.description, str) or not line.description.strip():
            errors[f"{prefix}.description"] = ["required"]
        elif len(line.description) > MAX_DESCRIPTION:
            errors[f"{prefix}.description"] = [f"at most {MAX_DESCRIPTION} characters"]
        if (
            isinstance(line.quantity, bool)
            or not isinstance(line.quantity, int)
            or not (1 <= line.quantity <= MAX_QUANTITY)
        ):
            errors[f"{prefix}.quantity"] = [f"a whole number from 1 to {MAX_QUANTITY}"]
        if (
            isinstance(line.unit_amount_minor, bool)
            or not isinstance(line.unit_amount_minor, int)
            or not (0 <= line.unit_amount_minor <= MAX_MINOR)
        ):
            errors[f"{prefix}.unit_amount_minor"] = ["a whole number of minor units, not negative"]
        if line.currency is not None and str(line.currency).upper() != currency:
            raise CurrencyMismatchError(currency, str(line.currency))
        if line.period_start and line.period_end and line.period_end < line.period_start:
            errors[f"{prefix}.period_end"] = ["must not be before period_start"]
    if errors:
        raise InvalidInvoiceError(errors)


def invoice_price(
    *,
    customer: Customer,
    currency: str,
    lines: Sequence[InvoiceLineInput],
    on_date: dt.date,
    known_rate: tax.KnownRate | None = None,
) -> PricedInvoice:
    """The full computation without writing anything (used for drafts, issue, preview).

    ``known_rate``: the GST rate in force on ``on_date``, when the caller read it together
    with the customer (``o2s.selectors.o2s_invoice_context``); otherwise it is queried."""
    currency = normalize_currency(currency)
    _validate_lines(lines, currency)
    treatment = tax.treatment_for(
        buyer_country=customer.billing_country,
        seller_country=settings.SELLER_COUNTRY,
        on=on_date,
        known=known_rate,
    )
    gst_free = _gst_free_treatment(buyer_country=customer.billing_country)
    priced: tuple[PricedLine, ...] = ()
    for index, line in enumerate(lines):
        line_treatment = gst_free if line.tax_treatment == TaxTreatment.GST_FREE else treatment
        priced += (
            PricedLine(
                position=index + 1,
                source=line,
                tax_code=line_treatment.code,
                tax_rate=line_treatment.rate,
                amounts=tax.line_amounts(
                    quantity=line.quantity, unit_amount_minor=line.unit_amount_minor, rate=line_treatment.rate
                ),
            ),
        )
    totals = tax.invoice_amounts([line.amounts for line in priced])
    if totals.total_minor > MAX_MINOR:
        raise InvalidInvoiceError({"lines": ["the invoice total is out of the supported range"]})
    return PricedInvoice(currency=currency, tax_code=treatment.code, lines=priced, totals=totals, on_date=on_date)


def _gst_free_treatment(*, buyer_country: str) -> tax.TaxTreatment:
    """A GST-free product: a GST-free supply at home, a GST-free export abroad; zero-rated."""
    code = TaxCode.GST_FREE if buyer_country == settings.SELLER_COUNTRY == "AU" else TaxCode.GST_FREE_EXPORT
    return tax.TaxTreatment(code=code, rate=tax.ZERO_RATE)
