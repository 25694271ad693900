"""Paying with PayPal in a real headless Chromium, against the local PayPal fake.

A customer opens the ``pay_url``, presses "Pay with PayPal", approves on the fake's page (a
test double), and is sent back to ``/payments/<id>/return/``, which captures the approved
order server-side and shows "Paid" only then - with every webhook dropped, so nothing but the
return settles it. The page also tells how to pay by bank transfer, with the reference.

As in test_pay_by_card.py, the database work is done before Playwright starts and the
assertions on the database after the browser is closed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from devtools.paypal_peer.harness import PaypalPeer
from gateways.bank_transfer.instructions import bank_transfer_instructions
from gateways.models import Payment, PaymentAttempt
from invoices.models import Invoice
from invoices.pay_links import pay_link_url
from paymenter import rls
from paymenter.principals import SystemPrincipal
from tests.browser.test_hosted_invoice_page import chromium_path, headless_chromium  # noqa: F401 - a fixture
from tests.factories import make_customer, make_invoice
from tests.paypal_peer_fixtures import PaypalPKI

pytestmark = pytest.mark.committed

SYSTEM = SystemPrincipal(label="test:browser-paypal")
RETURN_PATH = re.compile(r"/payments/([0-9a-f-]{36})/return/")
TIMEOUT_MS = 20_000


@pytest.fixture
def app_url(live_url: str, settings: Any, paypal_certificate: PaypalPKI) -> str:
    """The live server as ``PUBLIC_BASE_URL``; PayPal (the fake) and bank transfer offered."""
    settings.PUBLIC_BASE_URL = live_url
    settings.STRIPE_SECRET_KEY = ""
    settings.BANK_TRANSFER_ACCOUNT_NUMBER = "12345678"
    settings.BANK_TRANSFER_BSB = "062-000"
    settings.BANK_TRANSFER_ACCOUNT_NAME = "Tasmanian Cloud Pty Ltd"
    return live_url


def test_pay_with_paypal_in_chromium_captures_on_return_and_shows_paid(
    chromium_path: str,  # noqa: F811 - the fixture imported above
    app_url: str,
    paypal_settings: PaypalPeer,
    tmp_path: Path,
) -> None:
    live_url = app_url
    paypal_settings.configure(delivery="drop")  # no webhook ever: the return must settle it
    with rls.acting_as(SYSTEM):
        invoice = make_invoice(make_customer(name="Lenah Valley Hosting"), lines=[("VPS small", 2, 2000)])
        instructions = bank_transfer_instructions(invoice)
    assert instructions is not None
    pay_url = pay_link_url(invoice=invoice).replace("http://127.0.0.1:8000", live_url)
    console: list[str] = []

    with headless_chromium() as browser:
        context = browser.new_context()
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
            page.goto(pay_url)
            reference = page.inner_text("#bank-transfer-reference")
            assert page.locator("#pay-by-card").count() == 0
            with page.expect_navigation(url=re.compile(re.escape(paypal_settings.api_base) + r"/checkoutnow")):
                page.click("#pay-with-paypal")
            banner = page.inner_text("#test-double")
            approval_amount = page.inner_text("#amount")
            with page.expect_navigation(url=RETURN_PATH):
                page.click("#approve-button")
            return_url = page.url
            result = page.inner_text("#payment-result")
            page.screenshot(path=str(tmp_path / "paypal-return.png"), full_page=True)
        finally:
            context.close()

    assert not [line for line in console if "Content Security Policy" in line], console
    assert reference == instructions.reference
    assert "TEST DOUBLE" in banner
    assert approval_amount == "44.00 AUD"
    assert return_url.startswith(live_url)
    assert result == "Paid", console
    with rls.acting_as(SYSTEM):
        stored = Invoice.objects.get(pk=invoice.pk)
        payments = list(Payment.objects.filter(invoice=invoice).values_list("gateway", "status", "amount_minor"))
        attempts = list(PaymentAttempt.objects.filter(invoice=invoice).values_list("status", flat=True))
    assert (stored.status, stored.amount_paid_minor) == ("paid", 4400)
    assert payments == [("paypal", "applied", 4400)]
    assert attempts == ["succeeded"]
