"""Failed logins are limited per account (the e-mail) and per client address, in Redis
(ACCOUNT_RATE_LIMITS "login_failed": 10/m/ip, 5/5m/key); past the limit even the right
password is refused, and nothing is written."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client

from audit.models import AuditEvent
from tests.accounts.conftest import PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
TOO_MANY = "Too many failed login attempts. Try again later."


def attempt(address: str, email: str, password: str) -> tuple[int, str, bool]:
    client = Client(REMOTE_ADDR=address)
    response = client.post(LOGIN, {"login": email, "password": password})
    return response.status_code, response.content.decode(), "_auth_user_id" in client.session


def test_five_failures_lock_the_account_from_every_address(customer_user: User) -> None:
    failures = [attempt(f"198.51.100.{n}", "ada@customer.example", f"guess number {n}") for n in range(5)]
    assert all(status == 200 and TOO_MANY not in body for status, body, _ in failures)
    since = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0

    status, body, logged_in = attempt("198.51.100.99", "ADA@customer.example", PASSWORD)

    assert (status, logged_in) == (200, False)
    assert TOO_MANY in body
    assert mail.outbox == []
    assert not AuditEvent.objects.filter(sequence__gt=since).exists()
    # another account is not locked
    User.objects.create_user(username="bob", email="bob@customer.example", password=PASSWORD)


def test_ten_failures_from_one_address_lock_it_out_for_every_account(customer_user: User) -> None:
    failures = [attempt("203.0.113.9", f"someone{n}@customer.example", "guess passphrase") for n in range(10)]
    assert all(TOO_MANY not in body for _, body, _ in failures)

    status, body, logged_in = attempt("203.0.113.9", "ada@customer.example", PASSWORD)
    elsewhere = attempt("203.0.113.10", "ada@customer.example", PASSWORD)

    assert (status, logged_in) == (200, False)
    assert TOO_MANY in body
    assert elsewhere[2] is True  # the account itself is fine from another address
