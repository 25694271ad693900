"""The Content-Security-Policy in a real headless Chromium (Debian's, driven by Playwright): a
member of staff signs in (allauth's login page, then a TOTP code), opens the invoices, an
invoice, the customers, a hosted invoice page and the API docs (Swagger UI), and the browser
reports no violation while every page renders. A violation is what the policy would break in
production: a blocked script or style. Both the ``securitypolicyviolation`` events of each
document and Chromium's console ("Refused to ...") are collected.
"""

from __future__ import annotations

import types
import uuid
from pathlib import Path
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.totp.internal import auth as totp_auth
from django.contrib.auth.models import Group, User
from playwright.sync_api import ConsoleMessage, Page

from invoices.pay_links import pay_link_url
from paymenter import rls
from paymenter.principals import SystemPrincipal
from tests.browser.test_hosted_invoice_page import chromium_path, headless_chromium  # noqa: F401 - a fixture
from tests.conftest import STAFF_TOTP_SECRET
from tests.factories import make_customer, make_invoice

pytestmark = [pytest.mark.committed, pytest.mark.usefixtures("chromium_path")]

PASSWORD = "a staff member's passphrase 7"
TOTP_NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z: the TOTP code is computed for this moment
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(
    `${event.effectiveDirective} blocked ${event.blockedURI || "inline"} at ${event.sourceFile}:${event.lineNumber}`
  );
});
"""


def _violations(page: Page) -> list[str]:
    found: Any = page.evaluate("window.__cspViolations || []")
    return [f"{page.url}: {violation}" for violation in found]


def _staff_member(username: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """A staff member who logs in by e-mail, and the TOTP code the login will accept: the live
    server runs in this process, so its TOTP clock is pinned here."""
    email = f"{username}@paymenter.example"
    user = User.objects.create_user(username=username, email=email, password=PASSWORD, is_staff=True)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    user.groups.add(Group.objects.get(name="admin"))  # and a TOTP authenticator (tests/conftest.py)
    monkeypatch.setattr(totp_auth, "time", types.SimpleNamespace(time=lambda: TOTP_NOW))
    return email, totp_auth.format_hotp_value(totp_auth.hotp_value(STAFF_TOTP_SECRET, int(TOTP_NOW) // 30))


def _sign_in(page: Page, email: str, totp_code: str) -> list[str]:
    """allauth's login form, then its TOTP form; the violations seen on the TOTP page."""
    page.fill("#id_login", email)
    page.fill("#id_password", PASSWORD)
    page.click("main form button[type=submit]")
    page.wait_for_selector("main form input[name=code]", state="visible")
    page.wait_for_load_state("networkidle")
    seen = _violations(page)
    page.fill("main form input[name=code]", totp_code)
    page.click("main form button[type=submit]")
    return seen


def test_admin_hosted_page_and_api_docs_render_without_a_csp_violation(
    live_url: str, settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.PUBLIC_BASE_URL = live_url
    username = f"csp-{uuid.uuid4().hex[:8]}"  # committed data: unique per run
    email, totp_code = _staff_member(username, monkeypatch)
    with rls.acting_as(SystemPrincipal(label="test:browser")):
        customer = make_customer(name=f"CSP Hosting {username}")
        invoice = make_invoice(customer, lines=[("VPS small", 1, 2000)])
        pay_path = pay_link_url(invoice=invoice).removeprefix(live_url)
    assert pay_path.startswith("/pay/")
    assert invoice.number is not None

    console: list[str] = []
    violations: list[str] = []
    seen: dict[str, str] = {}
    with headless_chromium() as browser:
        page = browser.new_page()
        page.add_init_script(RECORD_VIOLATIONS)

        def on_console(message: ConsoleMessage) -> None:
            if "Content Security Policy" in message.text or message.text.startswith("Refused to"):
                console.append(f"{page.url}: {message.text}")

        page.on("console", on_console)

        def visit(path: str, selector: str) -> None:
            response = page.goto(f"{live_url}{path}")
            assert response is not None
            assert response.status == 200, path
            assert "unsafe-inline" not in response.headers["content-security-policy"]
            page.wait_for_selector(selector, state="visible")
            page.wait_for_load_state("networkidle")
            seen[path] = page.inner_text(selector)
            violations.extend(_violations(page))

        # the one login (allauth's, in the site's layout), then the staff member's TOTP code
        visit("/accounts/login/?next=/admin/", "main form #id_login")
        violations.extend(_sign_in(page, email, totp_code))
        page.wait_for_url(f"{live_url}/admin/")
        page.wait_for_selector("#site-name", state="visible")
        violations.extend(_violations(page))

        visit("/admin/invoices/invoice/", "#result_list")
        visit(f"/admin/invoices/invoice/{invoice.pk}/change/", "#content")
        visit("/admin/billing/customer/", "#result_list")
        visit(pay_path, "h1")
        visit("/api/v1/docs/", ".swagger-ui .info .title")
        page.screenshot(path=str(tmp_path / "api-docs.png"), full_page=True)

    assert violations == []
    assert console == []
    assert invoice.number in seen[f"/admin/invoices/invoice/{invoice.pk}/change/"]
    assert invoice.number in seen["/admin/invoices/invoice/"]
    assert seen[pay_path] == f"Tax invoice {invoice.number}"
    assert seen["/api/v1/docs/"].startswith("Paymenter O2S API")
