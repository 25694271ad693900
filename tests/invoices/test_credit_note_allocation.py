"""How a refund is spread over an invoice's lines: parts add up to the refund, no line is
credited beyond its total, every credit note's GST is the sum of its lines' GST, and a
series of refunds that returns everything reverses exactly the invoice's GST."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from invoices.credit_notes import credit_allocate
from invoices.models import InvoiceLine


def _line(position: int, total: int, rate: str = "0.1000") -> InvoiceLine:
    tax = int((Decimal(total) * Decimal(rate) / (1 + Decimal(rate))).to_integral_value())
    return InvoiceLine(
        id=uuid.uuid4(),
        position=position,
        description=f"line {position}",
        quantity=1,
        unit_amount_minor=total - tax,
        tax_code="GST" if rate != "0.0000" else "GST_FREE",
        tax_rate=Decimal(rate),
        subtotal_minor=total - tax,
        tax_minor=tax,
        total_minor=total,
    )


def test_a_full_refund_reverses_every_line_exactly() -> None:
    lines = [_line(1, 2200), _line(2, 990), _line(3, 500, "0.0000")]

    parts = credit_allocate(lines=lines, credited={}, amount_minor=3690)

    assert [(p.total_minor, p.tax_minor) for p in parts] == [(2200, 200), (990, 90), (500, 0)]


def test_a_partial_refund_is_spread_in_proportion_and_adds_up() -> None:
    lines = [_line(1, 2200), _line(2, 990)]

    parts = credit_allocate(lines=lines, credited={}, amount_minor=1000)

    assert sum(p.total_minor for p in parts) == 1000
    assert [p.total_minor for p in parts] == [690, 310]  # 2200:990 of 1000, largest remainder
    assert [p.tax_minor for p in parts] == [63, 28]
    assert all(p.subtotal_minor + p.tax_minor == p.total_minor for p in parts)


@pytest.mark.parametrize("amount", [0, -1, 3191])
def test_nothing_or_more_than_is_uncredited_is_refused(amount: int) -> None:
    with pytest.raises(ValueError, match="cannot credit"):
        credit_allocate(lines=[_line(1, 2200), _line(2, 990)], credited={}, amount_minor=amount)


line_totals = st.lists(st.integers(min_value=1, max_value=50_000), min_size=1, max_size=5)
rates = st.sampled_from(["0.1000", "0.1000", "0.0000", "0.1500"])


@given(
    totals=line_totals, line_rates=st.lists(rates, min_size=5, max_size=5), cuts=st.lists(st.floats(0, 1), max_size=6)
)
def test_any_series_of_refunds_adds_up_and_a_full_one_reverses_exactly_the_gst(
    totals: list[int], line_rates: list[str], cuts: list[float]
) -> None:
    lines = [_line(i + 1, total, line_rates[i]) for i, total in enumerate(totals)]
    invoice_total = sum(totals)
    credited: dict[uuid.UUID, int] = {}
    tax_reversed: dict[uuid.UUID, int] = {}
    refunded = 0
    for cut in [*cuts, 1.0]:  # the last refund returns whatever is left
        remaining = invoice_total - refunded
        amount = remaining if cut == 1.0 else max(1, int(remaining * cut))
        if remaining == 0:
            break
        parts = credit_allocate(lines=lines, credited=credited, amount_minor=amount)
        assert sum(p.total_minor for p in parts) == amount
        for part in parts:
            assert min(part.total_minor, part.tax_minor + 1, part.subtotal_minor + 1) > 0
            assert part.subtotal_minor + part.tax_minor == part.total_minor
            credited[part.invoice_line.id] = credited.get(part.invoice_line.id, 0) + part.total_minor
            tax_reversed[part.invoice_line.id] = tax_reversed.get(part.invoice_line.id, 0) + part.tax_minor
        refunded += amount
        for line in lines:
            assert credited.get(line.id, 0) <= line.total_minor
            assert tax_reversed.get(line.id, 0) <= line.tax_minor
    assert refunded == invoice_total
    assert {line.id: tax_reversed.get(line.id, 0) for line in lines} == {line.id: line.tax_minor for line in lines}
