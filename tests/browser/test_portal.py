"""The customer portal in a real headless Chromium: a customer logs in on the login page
(e-mail and password), lists their invoices, opens one, pays it by card on the local Stripe
peer (3-D Secure), comes back to "Paid", follows the link back to the invoice, sees it paid
and downloads its PDF tax invoice; another customer's invoice is the same 404 page as a
missing one.

Screenshots go to the test's tmp_path; with ``SAVE_DOCS_SCREENSHOTS=1`` also to
``docs/img/list.png``, ``detail.png`` and ``paid.png`` (not on every run: each run makes new
invoice numbers, which would change the committed images).

Order matters (see ``headless_chromium``): database work first, then only HTTP, then the
assertions on the database.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings as django_settings
from playwright.sync_api import ConsoleMessage, Page
from pypdf import PdfReader

from devtools.stripe_peer.harness import StripePeer
from gateways.models import Payment
from invoices.models import Invoice
from paymenter import rls
from paymenter.principals import SystemPrincipal
from tests.browser.test_hosted_invoice_page import chromium_path, headless_chromium  # noqa: F401 - a fixture
from tests.factories import make_customer, make_invoice, make_member

pytestmark = pytest.mark.committed

SYSTEM = SystemPrincipal(label="test:browser-portal")
DOCS_IMG = Path(django_settings.BASE_DIR) / "docs" / "img"
PASSWORD = "a customer's long passphrase 42"
CARD = "4000002500003155"  # 3-D Secure: the peer challenges it
RETURN_PATH = re.compile(r"/payments/([0-9a-f-]{36})/return/$")  # also run by Chromium: JavaScript syntax
TIMEOUT_MS = 20_000


@dataclass
class Visit:
    """What the browser saw, kept for the assertions after it is closed."""

    login_url: str = ""
    listed: list[str] = field(default_factory=list)
    detail_status: str = ""
    pay_status: int = 0
    checkout_url: str = ""
    result: str = ""
    after: str = ""
    paid_notice: str = ""
    foreign_status: int = 0
    missing_status: int = 0
    foreign_heading: str = ""
    pdf_name: str = ""
    pdf_text: str = ""
    missing_heading: str = ""
    console: list[str] = field(default_factory=list)


def _screenshot(page: Page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / name), full_page=True)
    if os.environ.get("SAVE_DOCS_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_IMG / name), full_page=True)


def _log_console(visit: Visit, message: ConsoleMessage) -> None:
    if message.type in ("error", "warning"):
        visit.console.append(f"{message.type}: {message.text}")


def _visit(page: Page, live_url: str, invoices: tuple[Invoice, Invoice], email: str, tmp_path: Path) -> Visit:
    invoice, foreign = invoices
    visit = Visit()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("console", lambda message: _log_console(visit, message))
    page.goto(f"{live_url}/")  # "/" sends a visitor to log in, then to their invoices
    page.wait_for_selector("#id_login", state="visible")
    visit.login_url = page.url
    page.fill("#id_login", email)
    page.fill("#id_password", PASSWORD)
    page.click("main form button[type=submit]")
    page.wait_for_url(re.compile(r"/invoices/$"))
    visit.listed = page.locator("#invoice-list tbody th a").all_inner_texts()
    _screenshot(page, tmp_path, "list.png")

    page.get_by_role("link", name=str(invoice.number)).click()
    page.wait_for_url(re.compile(rf"/invoices/{invoice.id}/$"))
    visit.detail_status = page.inner_text("#invoice-status")
    _screenshot(page, tmp_path, "detail.png")

    with page.expect_response(re.compile(r"/pay/stripe/$")) as started:
        page.locator("#pay-by-card").click()
    visit.pay_status = started.value.status
    page.wait_for_url(re.compile(r"/checkout/cs_test_\w+$"))
    visit.checkout_url = page.url
    _screenshot(page, tmp_path, "pay.png")
    page.fill("#card-number", CARD)
    with page.expect_navigation(url=re.compile(r"/3ds$")):
        page.click("#pay-button")
    with page.expect_navigation(url=RETURN_PATH):
        page.get_by_role("button", name="Complete authentication").click()
    visit.result = page.inner_text("#payment-result")
    page.locator("#back-to-invoice").click()
    page.wait_for_url(re.compile(rf"/invoices/{invoice.id}/$"))
    visit.after = page.inner_text("#invoice-status")
    visit.paid_notice = page.inner_text("#invoice-paid")
    _screenshot(page, tmp_path, "paid.png")
    with page.expect_download() as downloading:
        page.locator("#invoice-pdf").click()
    download = downloading.value
    visit.pdf_name = download.suggested_filename
    pdf_path = tmp_path / download.suggested_filename
    download.save_as(str(pdf_path))
    visit.pdf_text = "\n".join(page_.extract_text() for page_ in PdfReader(str(pdf_path)).pages)

    for kind, target in (("foreign", str(foreign.id)), ("missing", str(uuid.uuid4()))):
        response = page.goto(f"{live_url}/invoices/{target}/")
        assert response is not None
        setattr(visit, f"{kind}_status", response.status)
        setattr(visit, f"{kind}_heading", page.inner_text("h1"))
    return visit


def test_a_customer_lists_opens_and_pays_an_invoice_in_chromium(
    chromium_path: str,  # noqa: F811 - the fixture imported above
    live_url: str,
    settings: Any,
    stripe_settings: StripePeer,
    tmp_path: Path,
) -> None:
    settings.PUBLIC_BASE_URL = live_url  # the return URLs given to the peer point here
    stripe_settings.configure(delivery="drop")  # only the return page's check settles it
    tag = uuid.uuid4().hex[:8]
    with rls.acting_as(SYSTEM):
        customer = make_customer(name="Sandy Bay Hosting")
        older = make_invoice(customer, lines=[("Backup storage 50 GB", 2, 450)])
        invoice = make_invoice(customer, lines=[("VPS small, 1 month", 2, 2000), ("Managed backups", 1, 990)])
        foreign = make_invoice(make_customer(name="Someone Else Pty Ltd"))
    email = f"portal-{tag}@customer.example"
    user = make_member(customer, username=f"portal-{tag}", email=email)
    user.set_password(PASSWORD)
    user.save(update_fields=["password"])
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)

    with headless_chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        try:
            visit = _visit(context.new_page(), live_url, (invoice, foreign), email, tmp_path)
        finally:
            context.close()

    csp_refusals = [line for line in visit.console if "Content Security Policy" in line]
    assert not csp_refusals, csp_refusals
    assert visit.login_url.startswith(f"{live_url}/accounts/login/")
    assert visit.listed == [invoice.number, older.number]  # newest first, only this customer's
    assert visit.detail_status == "Open"
    assert visit.pay_status == 303
    assert visit.checkout_url.startswith(f"{stripe_settings.api_base}/checkout/cs_test_")
    assert visit.result == "Paid", visit.console
    assert (visit.after, visit.paid_notice) == ("Paid", "Paid. Thank you.")
    assert visit.foreign_status == visit.missing_status == 404
    assert visit.foreign_heading == visit.missing_heading == "Invoice not found"
    assert visit.pdf_name == f"{invoice.number}.pdf"
    for required in ("Tax invoice", "Sandy Bay Hosting", str(invoice.number), "VPS small, 1 month", "GST"):
        assert required in visit.pdf_text
    with rls.acting_as(SYSTEM):
        assert Invoice.objects.get(pk=invoice.pk).status == "paid"
        assert list(Payment.objects.filter(invoice=invoice).values_list("status", flat=True)) == ["applied"]
        assert Invoice.objects.get(pk=older.pk).status == "open"
