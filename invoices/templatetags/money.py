"""``{{ amount_minor|money:currency }}``: minor units shown as ``AUD 1,234.50``."""

from __future__ import annotations

from django import template

from paymenter.money import Money

register = template.Library()


@register.filter(name="money")
def money(minor: int, currency: str) -> str:
    return Money(int(minor), currency).format()
