"""Login by e-mail through allauth for customers and staff; the admin's login redirects there;
nobody signs up; a new sign-in is mailed to the owner and audited."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client

from audit.models import AuditEvent
from paymenter.principals import SystemPrincipal
from tests.accounts.conftest import PASSWORD, make_user

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


def last_sequence() -> int:
    return AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0


def test_a_customer_logs_in_by_email(customer_user: User) -> None:
    since = last_sequence()
    client = Client()

    response = client.post(LOGIN, {"login": "ADA@customer.example", "password": PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.session["_auth_user_id"] == str(customer_user.pk)
    [notice] = mail.outbox
    assert notice.to == ["ada@customer.example"]
    assert notice.subject == "[Paymenter] New sign-in to your account"
    assert "Someone signed in to your account" in str(notice.body)
    [event] = AuditEvent.objects.filter(sequence__gt=since)
    assert (event.action, event.actor_type, event.object_id) == (
        "account.login",
        "customer_user",
        str(customer_user.pk),
    )
    assert event.payload == {"email": "ada@customer.example"}


def test_a_username_is_not_a_login(customer_user: User) -> None:
    client = Client()

    response = client.post(LOGIN, {"login": "ada", "password": PASSWORD})

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert mail.outbox == []


def test_a_wrong_password_is_refused_without_a_trace(customer_user: User) -> None:
    since = last_sequence()
    client = Client()

    response = client.post(LOGIN, {"login": "ada@customer.example", "password": "not the passphrase 42"})

    assert response.status_code == 200
    assert "The email address and/or password you specified are not correct" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert mail.outbox == []
    assert not AuditEvent.objects.filter(sequence__gt=since).exists()


def test_an_unverified_address_gets_a_verification_mail_instead_of_a_session(system_principal: SystemPrincipal) -> None:
    make_user("new@customer.example", verified=False)
    client = Client()

    response = client.post(LOGIN, {"login": "new@customer.example", "password": PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == "/accounts/confirm-email/"
    assert "_auth_user_id" not in client.session
    [verification] = mail.outbox
    assert verification.to == ["new@customer.example"]
    assert "/accounts/confirm-email/" in str(verification.body)


@pytest.mark.staff_without_mfa
def test_staff_log_in_by_email_too(system_principal: SystemPrincipal) -> None:
    staff = make_user("ops@paymenter.example", staff=True)
    client = Client()

    response = client.post(LOGIN, {"login": "ops@paymenter.example", "password": PASSWORD, "next": "/admin/"})

    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.session["_auth_user_id"] == str(staff.pk)


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/admin/login/?next=/admin/invoices/invoice/", "/accounts/login/?next=%2Fadmin%2Finvoices%2Finvoice%2F"),
        ("/admin/login/", "/accounts/login/?next=%2Fadmin%2F"),
        ("/admin/login/?next=https://evil.example/", "/accounts/login/?next=%2Fadmin%2F"),
        ("/admin/", "/accounts/login/?next=%2Fadmin%2F"),
    ],
)
def test_the_admin_login_is_allauths(path: str, location: str) -> None:
    response = Client().get(path, follow=path == "/admin/")

    final = response.redirect_chain[-1][0] if path == "/admin/" else response["Location"]
    assert final == location


def test_nobody_signs_up(system_principal: SystemPrincipal) -> None:
    response = Client().post(
        "/accounts/signup/", {"email": "eve@example.com", "password1": PASSWORD, "password2": PASSWORD}
    )

    assert response.status_code == 200
    assert "Sign Up Closed" in response.content.decode()
    assert not User.objects.filter(email="eve@example.com").exists()


def test_logout_ends_the_session(customer_user: User) -> None:
    client = Client()
    client.post(LOGIN, {"login": "ada@customer.example", "password": PASSWORD})

    response = client.post("/accounts/logout/")

    assert response.status_code == 302
    assert "_auth_user_id" not in client.session
