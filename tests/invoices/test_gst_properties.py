"""Properties of GST arithmetic: totals are the sums of their lines, no cent is lost or
created, each line's GST is the one rounding of its exact value, pricing is deterministic.

Per-line versus per-invoice rounding (docs/money-and-gst.md): for non-negative amounts each
line's rounding error lies in (-0.5, 0.5] cent, so the invoice's GST (the sum of rounded
lines) and GST rounded once on the whole subtotal differ by an integer strictly less than
``n/2 + 1/2`` for ``n`` lines, i.e. by at most ``floor(n/2)`` cents - within the documented
bound of half a cent per line, and zero for a single line.
"""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.models import Customer
from invoices import checksum, tax
from invoices.models import Invoice, InvoiceLine, TaxCode
from invoices.pricing import MAX_LINES, MAX_QUANTITY
from paymenter.money import round_half_up
from paymenter.principals import SystemPrincipal
from tests.factories import make_customer, make_invoice

HALF = Decimal("0.5")

quantities = st.integers(min_value=1, max_value=MAX_QUANTITY)
unit_amounts = st.integers(min_value=0, max_value=10**9)
line_inputs = st.lists(st.tuples(quantities, unit_amounts), min_size=1, max_size=MAX_LINES)
rates = st.one_of(
    st.just(Decimal("0.0000")),
    st.just(Decimal("0.1000")),
    st.decimals(min_value=0, max_value=Decimal("0.9999"), places=4, allow_nan=False, allow_infinity=False),
)


def _price(lines: list[tuple[int, int]], rate: Decimal) -> list[tax.LineAmounts]:
    return [tax.line_amounts(quantity=q, unit_amount_minor=u, rate=rate) for q, u in lines]


@given(quantities, unit_amounts, rates)
def test_each_line_is_rounded_once_and_within_half_a_cent(quantity: int, unit: int, rate: Decimal) -> None:
    line = tax.line_amounts(quantity=quantity, unit_amount_minor=unit, rate=rate)
    exact = Decimal(quantity * unit) * rate
    assert line.subtotal_minor == quantity * unit
    assert line.tax_minor == round_half_up(exact)
    assert abs(line.tax_minor - exact) <= HALF
    assert line.total_minor == line.subtotal_minor + line.tax_minor
    assert line.tax_minor >= 0


@given(line_inputs, rates)
def test_invoice_totals_are_the_sums_of_its_lines(lines: list[tuple[int, int]], rate: Decimal) -> None:
    priced = _price(lines, rate)
    totals = tax.invoice_amounts(priced)
    assert totals.subtotal_minor == sum(line.subtotal_minor for line in priced)
    assert totals.tax_minor == sum(line.tax_minor for line in priced)
    assert totals.total_minor == sum(line.total_minor for line in priced)
    assert totals.total_minor == totals.subtotal_minor + totals.tax_minor
    assert totals.subtotal_minor == sum(q * u for q, u in lines)


@given(line_inputs, rates)
def test_per_line_gst_stays_within_the_documented_bound_of_per_invoice_gst(
    lines: list[tuple[int, int]], rate: Decimal
) -> None:
    totals = tax.invoice_amounts(_price(lines, rate))
    per_invoice = round_half_up(Decimal(totals.subtotal_minor) * rate)
    difference = abs(totals.tax_minor - per_invoice)
    assert difference <= len(lines) // 2
    assert difference <= HALF * len(lines)


def test_the_bound_is_reached_by_two_half_cent_lines() -> None:
    priced = _price([(1, 5), (1, 5)], Decimal("0.1000"))  # 0.5 cent of GST each
    assert [line.tax_minor for line in priced] == [1, 1]
    assert tax.invoice_amounts(priced).tax_minor == 2
    assert round_half_up(Decimal(10) * Decimal("0.1000")) == 1  # 1 cent on the whole subtotal


@given(line_inputs, rates, st.randoms(use_true_random=False))
def test_pricing_is_deterministic_and_independent_of_line_order(
    lines: list[tuple[int, int]], rate: Decimal, rnd: random.Random
) -> None:
    first = tax.invoice_amounts(_price(lines, rate))
    assert tax.invoice_amounts(_price(list(lines), Decimal(str(rate)))) == first
    shuffled = list(lines)
    rnd.shuffle(shuffled)
    assert tax.invoice_amounts(_price(shuffled, rate)) == first


@given(line_inputs)
def test_a_zero_rate_adds_no_tax(lines: list[tuple[int, int]]) -> None:
    totals = tax.invoice_amounts(_price(lines, tax.ZERO_RATE))
    assert totals.tax_minor == 0
    assert totals.total_minor == totals.subtotal_minor


@pytest.mark.parametrize(
    ("buyer", "code"), [("AU", TaxCode.GST), ("NZ", TaxCode.GST_FREE_EXPORT), ("US", TaxCode.GST_FREE_EXPORT)]
)
def test_only_an_australian_buyer_of_an_australian_seller_pays_gst(buyer: str, code: TaxCode) -> None:
    assert tax.tax_code_for(buyer_country=buyer, seller_country="AU") == code
    assert tax.tax_code_for(buyer_country="AU", seller_country="NZ") == TaxCode.GST_FREE_EXPORT


# --- stored invoices -------------------------------------------------------------------

# Small enough that six lines plus 10% GST stay inside MAX_MINOR (larger totals are refused).
db_lines = st.lists(st.tuples(st.integers(min_value=1, max_value=1000), unit_amounts), min_size=1, max_size=6)


@pytest.mark.django_db
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=db_lines, country=st.sampled_from(["AU", "NZ", "US"]))
def test_stored_invoice_is_the_sum_of_its_stored_lines_and_its_checksum_verifies(
    system_principal: SystemPrincipal, lines: list[tuple[int, int]], country: str
) -> None:
    customer: Customer = make_customer(billing_country=country)
    created = make_invoice(customer, lines=[(f"item {i}", q, u) for i, (q, u) in enumerate(lines)])

    invoice = Invoice.objects.get(pk=created.pk)
    stored = list(InvoiceLine.objects.filter(invoice=invoice).order_by("position"))
    rate = Decimal("0.1000") if country == "AU" else Decimal("0.0000")
    expected = tax.invoice_amounts(_price(lines, rate))

    assert [(line.quantity, line.unit_amount_minor) for line in stored] == lines
    assert all(line.tax_rate == rate for line in stored)
    assert all(line.tax_minor == round_half_up(line.subtotal_minor * line.tax_rate) for line in stored)
    assert invoice.subtotal_minor == sum(line.subtotal_minor for line in stored) == expected.subtotal_minor
    assert invoice.tax_minor == sum(line.tax_minor for line in stored) == expected.tax_minor
    assert invoice.total_minor == sum(line.total_minor for line in stored) == expected.total_minor
    assert invoice.total_minor == invoice.subtotal_minor + invoice.tax_minor
    assert checksum.is_valid(invoice, stored)
