"""The layout every page shares (templates/base.html): the vendored stylesheet and ours, served
by the app itself (WhiteNoise) however it is started; the seller's name in the header and its
name and ABN in the footer; for a signed-in user, links to the invoices and a log-out form.
A real browser checks the look (tests/browser/test_design.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.template.loader import render_to_string
from django.test import Client, RequestFactory
from django.urls import reverse

from tests.factories import UserFactory

STYLESHEETS = ("/static/vendor/pico/pico.classless.min.css", "/static/paymenter/site.css")
PICO = Path(settings.BASE_DIR) / "paymenter" / "static" / "vendor" / "pico"


@pytest.mark.parametrize("path", STYLESHEETS)
def test_the_stylesheets_are_served_by_the_app_itself(client: Client, path: str) -> None:
    """Without DEBUG and without a reverse proxy: gunicorn behind any proxy serves them too."""
    assert not settings.DEBUG
    response = client.get(path)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")


def test_the_vendored_pico_is_the_pinned_release_with_its_licence() -> None:
    readme = (PICO / "README.md").read_text()
    css = (PICO / "pico.classless.min.css").read_bytes()

    assert "2.1.1" in readme
    assert hashlib.sha256(css).hexdigest() in readme
    assert css.startswith(b'@charset "UTF-8";/*!\n * Pico CSS \xe2\x9c\xa8 v2.1.1')
    assert "MIT License" in (PICO / "LICENSE.md").read_text()


def test_an_anonymous_visitor_sees_the_seller_and_no_account_links(rf: RequestFactory) -> None:
    request = rf.get("/")
    request.user = AnonymousUser()

    html = render_to_string("base.html", request=request)

    assert '<html lang="en-AU"' in html
    for stylesheet in STYLESHEETS:
        assert f'<link rel="stylesheet" href="{stylesheet}">' in html
    assert '<span class="site-name">Tasmanian Cloud Pty Ltd</span>' in html
    assert "Tasmanian Cloud Pty Ltd · ABN 51 824 753 556" in html
    assert reverse("portal:invoice-list") not in html
    assert reverse("account_logout") not in html
    assert "<style" not in html
    assert "<script" not in html


@pytest.mark.django_db
def test_a_signed_in_customer_gets_the_invoices_link_and_a_log_out_form(rf: RequestFactory) -> None:
    user = UserFactory.create(email="kim@battery-point.example")
    request = rf.get("/")
    request.user = user

    html = render_to_string("base.html", request=request)

    assert f'<a href="{reverse("portal:home")}" class="site-name">Tasmanian Cloud Pty Ltd</a>' in html
    assert "kim@battery-point.example" in html
    assert f'<a href="{reverse("portal:invoice-list")}">Invoices</a>' in html
    assert f'<form method="post" action="{reverse("account_logout")}">' in html
    assert 'name="csrfmiddlewaretoken"' in html  # logging out is a POST with the CSRF token
