"""A staff member without MFA, in a real headless Chromium: the admin sends them to log in
(allauth's page), then to set up TOTP (after confirming the password); the code from the
secret shown activates it; logging in again asks for a code, and the admin opens. The TOTP
clock is pinned (the live server runs in this process), one moment per code so none is reused.
Screenshots go to the test's folder, and with SAVE_DOCS_SCREENSHOTS=1 to docs/img/ (login.png, mfa-setup.png)."""

from __future__ import annotations

import os
import shutil
import types
import uuid
from pathlib import Path
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal import auth as totp_auth
from django.conf import settings as django_settings
from django.contrib.auth.models import Group, User
from playwright.sync_api import Page

from tests.browser.test_hosted_invoice_page import chromium_path, headless_chromium  # noqa: F401 - a fixture

pytestmark = [pytest.mark.committed, pytest.mark.staff_without_mfa, pytest.mark.usefixtures("chromium_path")]

PASSWORD = "a staff member's passphrase 8"
SETUP_AT = 1_800_000_000.0  # 2027-01-15T08:00:00Z
LOGIN_AT = SETUP_AT + 90  # three periods later: a different code
DOCS_IMG = Path(django_settings.BASE_DIR) / "docs" / "img"


def code_at(secret: str, at: float) -> str:
    return str(totp_auth.format_hotp_value(totp_auth.hotp_value(secret, int(at) // 30)))


def submit(page: Page, field: str, value: str) -> None:
    page.fill(f"main form input[name={field}]", value)
    page.click("main form button[type=submit]")


def shot(page: Page, tmp_path: Path, name: str) -> None:
    """Into the test's folder; into docs/img/ only with ``SAVE_DOCS_SCREENSHOTS=1`` (a run must
    not rewrite committed files)."""
    page.screenshot(path=str(tmp_path / name), full_page=True)
    if os.environ.get("SAVE_DOCS_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp_path / name, DOCS_IMG / name)


def test_staff_are_forced_through_totp_setup_then_log_in_with_a_code(
    committed_db: None, live_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    email = f"ops-{uuid.uuid4().hex[:8]}@paymenter.example"  # committed data: unique per run
    user = User.objects.create_user(username=email, email=email, password=PASSWORD, is_staff=True)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    user.groups.add(Group.objects.get(name="admin"))
    clock: dict[str, Any] = {"now": SETUP_AT}
    monkeypatch.setattr(totp_auth, "time", types.SimpleNamespace(time=lambda: clock["now"]))

    with headless_chromium() as browser:
        page = browser.new_page()

        def log_in() -> None:
            page.fill("#id_login", email)
            page.fill("#id_password", PASSWORD)
            page.click("main form button[type=submit]")

        page.goto(f"{live_url}/admin/")
        page.wait_for_selector("#id_login", state="visible")
        login_url = page.url
        shot(page, tmp_path, "login.png")
        log_in()
        # no authenticator yet: the admin sends them to the setup, which asks for the password again
        page.wait_for_selector("main form input[name=password]", state="visible")
        reauthenticate_url = page.url
        submit(page, "password", PASSWORD)
        page.wait_for_selector("#authenticator_secret", state="attached")
        setup_url = page.url
        secret = page.input_value("#authenticator_secret")
        shot(page, tmp_path, "mfa-setup.png")
        submit(page, "code", code_at(secret, SETUP_AT))
        page.wait_for_load_state("networkidle")
        after_setup = page.url
        page.goto(f"{live_url}/admin/")
        page.wait_for_selector("#site-name", state="visible")

        # a new session: the password, then the code
        page.context.clear_cookies()
        clock["now"] = LOGIN_AT
        page.goto(f"{live_url}/admin/")
        page.wait_for_selector("#id_login", state="visible")
        log_in()
        page.wait_for_selector("main form input[name=code]", state="visible")
        code_url = page.url
        submit(page, "code", "000000" if code_at(secret, LOGIN_AT) != "000000" else "111111")
        page.wait_for_selector("main form input[name=code]", state="visible")
        refused_text = page.inner_text("main")
        submit(page, "code", code_at(secret, LOGIN_AT))
        page.wait_for_url(f"{live_url}/admin/")
        page.wait_for_selector("#site-name", state="visible")
        shot(page, tmp_path, "admin-after-mfa.png")

    assert login_url == f"{live_url}/accounts/login/?next=%2Fadmin%2F"
    assert reauthenticate_url.startswith(f"{live_url}/accounts/reauthenticate/")
    assert setup_url.startswith(f"{live_url}/accounts/2fa/totp/activate/")
    assert after_setup != setup_url
    assert code_url == f"{live_url}/accounts/2fa/authenticate/"
    assert "Incorrect code." in refused_text
    assert Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).count() == 1
