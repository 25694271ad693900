"""Every page carries the Content-Security-Policy (django-csp, settings.CONTENT_SECURITY_POLICY)
without 'unsafe-inline', and the admin the same security headers as the hosted invoice page.

The pages themselves must then hold nothing the policy refuses: no inline style, and no inline
script but the API docs page's start-up, which carries the nonce the header names. A real
browser proves the rest (tests/browser/test_content_security_policy.py).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path, reverse

from config.urls import handler400, handler403, handler404, handler500  # noqa: F401 - used as urlconf
from config.urls import urlpatterns as base_urlpatterns
from invoices.models import Invoice
from invoices.pay_links import pay_link_token
from paymenter.principals import SystemPrincipal
from tests.factories import make_customer, make_invoice

pytestmark = pytest.mark.django_db

POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "object-src": "'none'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
}
NONCE_RE = re.compile(r"'nonce-([A-Za-z0-9+/=]+)'")
INLINE_SCRIPT_RE = re.compile(r"<script(?![^>]*\bsrc=)([^>]*)>", re.IGNORECASE)
INLINE_STYLE_RE = re.compile(r"<style\b|\sstyle\s*=", re.IGNORECASE)


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("boom")


# the real URLconf plus a view that fails, for the 500 pages (see test_error_pages_...)
urlpatterns = [*base_urlpatterns, path("boom/", boom), path("api/v1/boom/", boom)]


def directives(response: Any) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    parsed: dict[str, str] = {}
    for part in header.split(";"):
        name, _, value = part.strip().partition(" ")
        parsed[name] = value
    return parsed


def assert_policy(response: Any, *, nonce: bool = False) -> None:
    assert "Content-Security-Policy" in response, response.request["PATH_INFO"]
    assert "unsafe-inline" not in response["Content-Security-Policy"]
    assert "unsafe-eval" not in response["Content-Security-Policy"]
    found = directives(response)
    if nonce:
        assert NONCE_RE.fullmatch(found["script-src"].removeprefix("'self' ")), found["script-src"]
        found["script-src"] = found["script-src"].split(" ")[0]
    assert found == POLICY


def assert_nothing_inline(response: Any) -> None:
    html = response.content.decode()
    assert not INLINE_STYLE_RE.search(html), response.request["PATH_INFO"]
    assert not INLINE_SCRIPT_RE.search(html), response.request["PATH_INFO"]


def assert_security_headers(response: Any, *, referrer: str = "same-origin") -> None:
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == referrer
    assert response["X-Frame-Options"] == "DENY"


@pytest.fixture
def invoice(system_principal: SystemPrincipal) -> Invoice:
    return make_invoice(make_customer(name="Battery Point Hosting"))


@pytest.fixture
def staff(system_principal: SystemPrincipal) -> Client:
    User.objects.create_superuser(username="root", password="a root passphrase 4242")
    client = Client()
    assert client.login(username="root", password="a root passphrase 4242")
    return client


def test_admin_pages_carry_the_policy_and_the_security_headers(staff: Client, invoice: Invoice) -> None:
    root = User.objects.get(username="root")
    pages = [
        reverse("admin:index"),
        reverse("admin:invoices_invoice_changelist"),
        reverse("admin:invoices_invoice_change", args=[invoice.pk]),
        reverse("admin:billing_customer_changelist"),
        reverse("admin:billing_customer_change", args=[invoice.customer_id]),
        reverse("admin:auth_user_changelist"),
        reverse("admin:auth_user_change", args=[root.pk]),
        reverse("admin:auth_group_add"),
    ]
    login = Client().get(reverse("account_login"))  # the admin's login redirects here
    responses = [login, *(staff.get(url) for url in pages)]

    for response in responses:
        assert response.status_code == 200, response.request["PATH_INFO"]
        assert_policy(response)
        assert_security_headers(response)
        assert_nothing_inline(response)


def test_hosted_invoice_page_and_its_refusal_carry_the_policy(invoice: Invoice) -> None:
    token = pay_link_token(invoice=invoice)

    page = Client().get(f"/pay/{token}/")
    refused = Client().get(f"/pay/{token[:-1]}{'A' if token[-1] != 'A' else 'B'}/")

    assert (page.status_code, refused.status_code) == (200, 400)
    for response in (page, refused):
        assert_policy(response)
        assert_security_headers(response, referrer="same-origin")  # the token never leaves the site
        assert_nothing_inline(response)


def test_api_docs_page_runs_its_one_inline_script_by_nonce(staff: Client) -> None:
    response = staff.get("/api/v1/docs/")

    assert response.status_code == 200
    assert_policy(response, nonce=True)
    assert_security_headers(response)
    [nonce] = NONCE_RE.findall(response["Content-Security-Policy"])
    html = response.content.decode()
    assert not INLINE_STYLE_RE.search(html)
    assert [attributes.strip() for attributes in INLINE_SCRIPT_RE.findall(html)] == [f'nonce="{nonce}"']
    # a new nonce for every response
    assert NONCE_RE.findall(staff.get("/api/v1/docs/")["Content-Security-Policy"]) != [nonce]


def test_pages_without_the_nonce_have_no_nonce_in_the_policy(staff: Client) -> None:
    assert "nonce-" not in staff.get(reverse("admin:index"))["Content-Security-Policy"]


@pytest.mark.urls("tests.paymenter.test_security_headers")
def test_error_pages_carry_the_policy() -> None:
    anonymous = Client(raise_request_exception=False)
    csrf_checked = Client(enforce_csrf_checks=True)
    responses = {
        "404 page": anonymous.get("/no-such-page/"),
        "404 api": anonymous.get("/api/v1/no-such-thing/"),
        "500 page": anonymous.get("/boom/"),
        "500 api": anonymous.get("/api/v1/boom/"),
        "403 csrf": csrf_checked.post(reverse("admin:login"), {"username": "x", "password": "y"}),
        "admin, signed out": Client().get(reverse("admin:index")),  # the redirect to the login
    }

    assert {name: response.status_code for name, response in responses.items()} == {
        "404 page": 404,
        "404 api": 404,
        "500 page": 500,
        "500 api": 500,
        "403 csrf": 403,
        "admin, signed out": 302,
    }
    for response in responses.values():
        assert_policy(response)
        assert response["X-Content-Type-Options"] == "nosniff"
    for name in ("404 page", "500 page", "403 csrf"):
        assert_nothing_inline(responses[name])
