"""The buyer's approval page: plain HTML forms, no JavaScript, so ``requests`` and headless
browsers drive it alike. Every page says it is a test double."""

from __future__ import annotations

from html import escape
from typing import Any

BANNER = "TEST DOUBLE — local PayPal fake for development and tests — no real money moves"


def _layout(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:32rem;margin:2rem auto}}
#test-double{{background:#fde68a;border:2px solid #b45309;padding:.5rem;font-weight:bold}}</style></head>
<body><p id="test-double" role="alert">{escape(BANNER)}</p>
<h1>{escape(title)}</h1>
{body}
</body></html>
"""


def approval(order: dict[str, Any]) -> str:
    unit = order["purchase_units"][0]
    amount = f"{unit['amount']['value']} {unit['amount']['currency_code']}"
    token = escape(order["id"])
    form = """<form method="post" action="/checkoutnow/{action}">
<input type="hidden" name="token" value="{token}"><button id="{action}-button" type="submit">{label}</button></form>"""
    return _layout(
        "Pay with PayPal (test)",
        f"""<p id="description">{escape(unit.get("description", ""))}</p><p id="amount">{escape(amount)}</p>
{form.format(action="approve", token=token, label="Approve")}
{form.format(action="cancel", token=token, label="Cancel")}""",
    )


def message(title: str, text: str) -> str:
    return _layout(title, f'<p id="message">{escape(text)}</p>')
