"""The look of the hosted invoice page in a real headless Chromium: the stylesheets load
(computed styles are Pico's, not the browser's, and the Content-Security-Policy refuses
nothing), the page fits a 375 px phone without scrolling sideways, and the pay button is
reached with the keyboard and shows where the focus is.

Screenshots go to the test's tmp_path; with ``SAVE_DOCS_SCREENSHOTS=1`` also to
``docs/img/hosted-invoice.png`` and ``docs/img/hosted-invoice-phone.png`` (not on every run:
each run makes a new invoice number, which would change the committed images).

Order matters (see ``headless_chromium``): database work first, then only HTTP.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from playwright.sync_api import Browser, ConsoleMessage, Page, Response

from devtools.stripe_peer.harness import StripePeer
from invoices.pay_links import pay_link_url
from paymenter import rls
from paymenter.principals import SystemPrincipal
from tests.browser.test_content_security_policy import RECORD_VIOLATIONS
from tests.browser.test_hosted_invoice_page import chromium_path, headless_chromium  # noqa: F401 - a fixture
from tests.factories import make_customer, make_invoice

pytestmark = pytest.mark.committed

DOCS_IMG = Path(django_settings.BASE_DIR) / "docs" / "img"
PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 900}
MAX_TABS = 15


def _open(browser: Browser, url: str, viewport: dict[str, int], console: list[str]) -> Page:
    page = browser.new_page(viewport=viewport)  # type: ignore[arg-type]
    page.add_init_script(RECORD_VIOLATIONS)

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or message.text.startswith("Refused to"):
            console.append(message.text)

    page.on("console", on_console)

    def on_response(response: Response) -> None:
        if response.status >= 400 and response.request.resource_type in ("document", "stylesheet"):
            console.append(f"{response.status} {response.url}")

    page.on("response", on_response)
    response = page.goto(url)
    assert response is not None
    assert response.status == 200
    page.wait_for_load_state("networkidle")
    found: Any = page.evaluate("window.__cspViolations || []")
    console.extend(found)
    return page


def _screenshot(page: Page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / name), full_page=True)
    if os.environ.get("SAVE_DOCS_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_IMG / name), full_page=True)


def test_the_hosted_invoice_page_is_styled_fits_a_phone_and_is_usable_by_keyboard(
    chromium_path: str,  # noqa: F811 - the fixture imported above
    live_url: str,
    settings: Any,
    stripe_settings: StripePeer,
    tmp_path: Path,
) -> None:
    settings.PUBLIC_BASE_URL = live_url
    settings.BANK_TRANSFER_ACCOUNT_NAME = "Tasmanian Cloud Pty Ltd"
    settings.BANK_TRANSFER_BANK_NAME = "Example Bank"
    settings.BANK_TRANSFER_BSB = "062-000"
    settings.BANK_TRANSFER_ACCOUNT_NUMBER = "12345678"
    with rls.acting_as(SystemPrincipal(label="test:browser-design")):
        customer = make_customer(name="Battery Point Hosting")
        invoice = make_invoice(
            customer,
            lines=[
                ("VPS small, 1 month", 1, 2000),
                ("Backup storage 50 GB", 2, 450),
                ("Dedicated IPv4 address", 1, 500),
            ],
        )
        url = pay_link_url(invoice=invoice)

    console: list[str] = []
    with headless_chromium() as browser:
        page = _open(browser, url, DESKTOP, console)
        styles: Any = page.evaluate(
            """() => {
              const body = getComputedStyle(document.body);
              const amount = document.querySelector("tfoot tr:last-child td");
              return {
                fontFamily: body.fontFamily,
                sheets: Array.from(document.styleSheets, (sheet) => new URL(sheet.href).pathname),
                rules: Array.from(document.styleSheets, (sheet) => sheet.cssRules.length),
                amountAlign: getComputedStyle(amount).textAlign,
              };
            }"""
        )
        _screenshot(page, tmp_path, "hosted-invoice.png")
        focused: list[str] = []
        for _ in range(MAX_TABS):
            page.keyboard.press("Tab")
            focused.append(page.evaluate("document.activeElement.id || document.activeElement.tagName"))
            if focused[-1] == "pay-by-card":
                break
        outline: Any = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        page.keyboard.press("Shift+Tab")
        page.keyboard.press("Shift+Tab")

        phone = _open(browser, url, PHONE, console)
        widths: Any = phone.evaluate(
            "({scroll: document.scrollingElement.scrollWidth, client: document.scrollingElement.clientWidth})"
        )
        pay_button_box = phone.locator("#pay-by-card").bounding_box()
        _screenshot(phone, tmp_path, "hosted-invoice-phone.png")

    assert not console, console  # no CSP refusal, no stylesheet that failed to load
    assert styles["sheets"] == ["/static/vendor/pico/pico.classless.min.css", "/static/paymenter/site.css"]
    assert all(count > 0 for count in styles["rules"]), styles
    assert "system-ui" in styles["fontFamily"]  # Pico's, not Chromium's default serif
    assert styles["amountAlign"] == "right"  # money lines up
    assert focused[-1] == "pay-by-card", focused  # reached with Tab alone
    assert focused[0] == "A"  # the skip link comes first
    assert outline == "solid"  # and the focus is visible
    assert widths["scroll"] <= PHONE["width"], widths  # no sideways scrolling on a phone
    assert pay_button_box is not None
    assert pay_button_box["x"] >= 0
    assert pay_button_box["x"] + pay_button_box["width"] <= PHONE["width"]
