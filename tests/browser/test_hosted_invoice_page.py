"""The hosted invoice page in a real headless Chromium (Debian's, driven by Playwright).

A customer follows O2S's signed ``pay_url``: the browser gets the tax invoice; a link with
any character changed gets the clear refusal page, and never another invoice.
Chromium comes from Debian (``/usr/bin/chromium``; ``.ci/run`` installs it in CI). Where it
is missing the test is skipped locally, but fails in CI.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright

from invoices.pay_links import pay_link_url
from paymenter import rls
from paymenter.principals import SystemPrincipal
from tests.factories import make_customer, make_invoice

pytestmark = pytest.mark.committed

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# as the machine notes advise for a closed network: no background connections at start-up
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def chromium_path() -> str:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium not found at {CHROMIUM}; .ci/run installs Debian's chromium")
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    return CHROMIUM


@contextmanager
def headless_chromium() -> Iterator[Browser]:
    """Start after the test's database work: Playwright's sync API runs an event loop on
    this thread, and Django refuses database calls from a thread with a running loop."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def test_customer_sees_the_tax_invoice_and_a_tampered_link_is_refused(
    chromium_path: str, live_url: str, settings: Any, tmp_path: Path
) -> None:
    settings.PUBLIC_BASE_URL = live_url
    with rls.acting_as(SystemPrincipal(label="test:browser")):
        mine = make_invoice(make_customer(name="Battery Point Hosting"), lines=[("VPS small", 3, 2000)])
        other = make_invoice(make_customer(name="Someone Else Pty Ltd"), lines=[("VPS large", 1, 9900)])
        url = pay_link_url(invoice=mine)
    token = url.rstrip("/").rsplit("/", 1)[1]
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")

    with headless_chromium() as browser:
        page = browser.new_page()
        response = page.goto(url)
        title = page.title()
        body = page.inner_text("body")
        page.screenshot(path=str(tmp_path / "hosted-invoice.png"), full_page=True)
        refused = page.goto(f"{live_url}/pay/{flipped}/")
        refused_status = refused.status if refused is not None else None
        text = page.inner_text("body")

    assert response is not None
    assert response.status == 200
    assert title == f"Tax invoice {mine.number}"
    for expected in ("Battery Point Hosting", "ABN 51 824 753 556", "AUD 60.00", "AUD 6.00", "AUD 66.00"):
        assert expected in body, expected
    assert mine.number is not None
    assert other.number is not None
    assert other.number not in body
    assert refused_status == 400
    assert "invalid or has expired" in text
    assert mine.number not in text
    assert other.number not in text
