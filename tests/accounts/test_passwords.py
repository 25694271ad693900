"""Password reset by e-mail; the project's validators (12 characters or more, not a common
password) apply to allauth's forms."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client

from tests.accounts.conftest import PASSWORD

pytestmark = pytest.mark.django_db

RESET_LINK = re.compile(r"http://testserver(/accounts/password/reset/key/[^\s]+/)")


def reset_link(client: Client, email: str) -> str:
    response = client.post("/accounts/password/reset/", {"email": email})
    assert response.status_code == 302
    [message] = mail.outbox
    assert message.to == [email]
    match = RESET_LINK.search(str(message.body))
    assert match is not None
    # the key moves from the URL into the session, and the form lives at a "set-password" URL
    landing = client.get(match.group(1))
    assert landing.status_code == 302
    return str(landing["Location"])


@pytest.mark.parametrize(
    ("password", "error"),
    [
        ("short 1 pass", None),  # 12 characters: accepted
        ("short pass1", "This password is too short. It must contain at least 12 characters."),
        ("password1234", "This password is too common."),
    ],
)
def test_reset_applies_the_password_rules(customer_user: User, password: str, error: str | None) -> None:
    client = Client()
    form_url = reset_link(client, "ada@customer.example")

    response = client.post(form_url, {"password1": password, "password2": password})

    customer_user.refresh_from_db()
    if error is None:
        assert response.status_code == 302
        assert customer_user.check_password(password)
    else:
        assert response.status_code == 200
        assert error in response.content.decode()
        assert customer_user.check_password(PASSWORD)  # unchanged


def test_reset_for_an_unknown_address_sends_nothing_revealing(customer_user: User) -> None:
    response = Client().post("/accounts/password/reset/", {"email": "nobody@example.com"})

    assert response.status_code == 302  # the same answer as for a known address
    assert all("/accounts/password/reset/key/" not in str(message.body) for message in mail.outbox)
