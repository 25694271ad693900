"""The hosted test checkout pages: plain HTML forms, no JavaScript, so headless browsers and
``requests`` can drive them alike. Every page says it is a test double."""

from __future__ import annotations

from html import escape
from typing import Any

BANNER = "TEST DOUBLE — local Stripe peer for development and tests — no real money moves"
DEFAULT_CARD = "4000002500003155"
# https://docs.stripe.com/currencies#zero-decimal
ZERO_DECIMAL = frozenset(
    ("bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf")
)


def format_amount(amount: int, currency: str) -> str:
    if currency.lower() in ZERO_DECIMAL:
        return f"{amount} {currency.upper()}"
    return f"{amount / 100:,.2f} {currency.upper()}"


def _layout(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:32rem;margin:2rem auto}}
#test-double{{background:#fde68a;border:2px solid #b45309;padding:.5rem;font-weight:bold}}
label{{display:block;margin-top:.75rem}}</style></head>
<body><p id="test-double" role="alert">{escape(BANNER)}</p>
<h1>{escape(title)}</h1>
{body}
</body></html>
"""


def _summary(session: dict[str, Any], item_name: str) -> str:
    amount = format_amount(session["amount_total"], session["currency"])
    return f'<p id="line-item">{escape(item_name)}</p><p id="amount">{escape(amount)}</p>'


def _cancel(session: dict[str, Any]) -> str:
    if not session.get("cancel_url"):
        return ""
    return f'<p><a id="cancel-link" href="{escape(session["cancel_url"])}">Cancel and return</a></p>'


def checkout(session: dict[str, Any], item_name: str, error: str | None = None) -> str:
    sid = escape(session["id"])
    problem = f'<p id="error" role="alert">{escape(error)}</p>' if error else ""
    return _layout(
        "Pay (test checkout)",
        f"""{_summary(session, item_name)}{problem}
<form id="pay-form" method="post" action="/checkout/{sid}/pay">
<label for="card-number">Card number</label>
<input id="card-number" name="card_number" value="{DEFAULT_CARD}" inputmode="numeric" autocomplete="off">
<label for="card-expiry">Expiry (ignored: always 12/2034)</label>
<input id="card-expiry" name="card_expiry" value="12/34">
<label for="card-cvc">CVC (ignored)</label>
<input id="card-cvc" name="card_cvc" value="123">
<p><button id="pay-button" type="submit">Pay</button></p>
</form>
{_cancel(session)}""",
    )


def three_d_secure(session: dict[str, Any], item_name: str, payment_intent: str) -> str:
    sid, pi = escape(session["id"]), escape(payment_intent)
    form = """<form method="post" action="/checkout/{sid}/3ds">
<input type="hidden" name="payment_intent" value="{pi}"><input type="hidden" name="outcome" value="{outcome}">
<button id="authenticate-{outcome}" type="submit">{label}</button></form>"""
    return _layout(
        "3-D Secure authentication (test)",
        f"""{_summary(session, item_name)}<p>Your bank asks you to confirm this payment.</p>
{form.format(sid=sid, pi=pi, outcome="success", label="Complete authentication")}
{form.format(sid=sid, pi=pi, outcome="fail", label="Fail authentication")}""",
    )


def failed(session: dict[str, Any], message: str) -> str:
    return _layout(
        "Payment failed",
        f"""<p id="failure" role="alert">{escape(message)}</p>
<p><a id="retry-link" href="/checkout/{escape(session["id"])}">Try again</a></p>{_cancel(session)}""",
    )


def closed(session: dict[str, Any], item_name: str) -> str:
    state = (
        "This checkout session is complete."
        if session["status"] == "complete"
        else "This checkout session has expired."
    )
    return _layout("Checkout", f'{_summary(session, item_name)}<p id="session-status">{state}</p>')


def not_found() -> str:
    return _layout("Checkout", '<p id="session-status">No such checkout session.</p>')
