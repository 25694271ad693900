"""MFA: required for staff before any admin page, optional for customers. With TOTP set up,
login asks for a code; a wrong code and a reused recovery code are refused; MFA changes are
audited."""

from __future__ import annotations

from typing import Any

import pytest
from allauth.core import context
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import SECRET_SESSION_KEY
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client, RequestFactory

from audit.models import AuditEvent
from paymenter.principals import SystemPrincipal
from tests.accounts.conftest import PASSWORD, make_user, totp_code

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
MFA = "/accounts/2fa/authenticate/"
SETUP = "/accounts/2fa/totp/activate/"
STAFF = "ops@paymenter.example"


def last_sequence() -> int:
    return AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0


def reauthenticate(client: Client) -> None:
    """allauth asks for the password again before an authenticator is added (its default)."""
    response = client.post(f"/accounts/reauthenticate/?next={SETUP}", {"password": PASSWORD, "next": SETUP})
    assert response.status_code in (200, 302)


def password_step(client: Client, email: str = STAFF) -> None:
    response = client.post(LOGIN, {"login": email, "password": PASSWORD, "next": "/admin/"})
    assert response.status_code == 302
    assert response["Location"] == MFA
    assert "_auth_user_id" not in client.session


@pytest.mark.staff_without_mfa
def test_staff_without_mfa_are_sent_to_setup_and_kept_out_of_the_admin(system_principal: SystemPrincipal) -> None:
    staff = make_user(STAFF, staff=True)
    client = Client()
    login = client.post(LOGIN, {"login": STAFF, "password": PASSWORD, "next": "/admin/"})
    assert login["Location"] == "/admin/"  # no authenticator yet: no code asked

    paths = ("/admin/", "/admin/invoices/invoice/", "/admin/auth/user/", "/api/v1/docs/", "/api/v1/schema/")
    pages = [client.get(path) for path in paths]

    assert [page.status_code for page in pages] == [302] * len(paths)
    assert [page["Location"] for page in pages] == [
        f"{SETUP}?next=%2Fadmin%2F",
        f"{SETUP}?next=%2Fadmin%2Finvoices%2Finvoice%2F",
        f"{SETUP}?next=%2Fadmin%2Fauth%2Fuser%2F",
        f"{SETUP}?next=%2Fapi%2Fv1%2Fdocs%2F",
        f"{SETUP}?next=%2Fapi%2Fv1%2Fschema%2F",
    ]
    assert client.get(SETUP)["Location"] == f"/accounts/reauthenticate/?next={SETUP.replace('/', '%2F')}"
    reauthenticate(client)
    assert client.get(SETUP).status_code == 200
    assert client.post("/accounts/logout/").status_code == 302
    assert not Authenticator.objects.filter(user=staff).exists()


@pytest.mark.staff_without_mfa
def test_staff_set_up_totp_then_the_admin_opens_and_it_is_audited(
    system_principal: SystemPrincipal, django_capture_on_commit_callbacks: Any
) -> None:
    staff = make_user(STAFF, staff=True)
    client = Client()
    client.post(LOGIN, {"login": STAFF, "password": PASSWORD})
    reauthenticate(client)
    page = client.get(SETUP)
    assert page.status_code == 200
    secret = client.session[SECRET_SESSION_KEY]
    wrong = client.post(SETUP, {"code": "000000" if totp_code(secret) != "000000" else "111111"})
    assert wrong.status_code == 200
    assert not Authenticator.objects.filter(user=staff).exists()
    since = last_sequence()

    # allauth signals and mails after the commit, which in a test comes after the request: give
    # its mail a request to read the host from
    with context.request_context(RequestFactory().get("/")), django_capture_on_commit_callbacks(execute=True):
        response = client.post(SETUP, {"code": totp_code(secret)})

    assert response.status_code == 302
    assert Authenticator.objects.filter(user=staff, type=Authenticator.Type.TOTP).exists()
    assert client.get("/admin/").status_code == 200
    actions = list(AuditEvent.objects.filter(sequence__gt=since).values_list("action", "actor_type", "payload"))
    assert ("account.mfa_added", "staff", {"type": "totp"}) in actions
    assert ("account.mfa_added", "staff", {"type": "recovery_codes"}) in actions
    assert [message.subject for message in mail.outbox][-1].endswith("Authenticator App Activated")


def test_login_asks_for_the_code_and_refuses_a_wrong_one(staff_user: User) -> None:
    client = Client()
    password_step(client)
    since = last_sequence()

    wrong = client.post(MFA, {"code": "123456" if totp_code() != "123456" else "654321"})

    assert wrong.status_code == 200
    assert "Incorrect code." in wrong.content.decode()
    assert "_auth_user_id" not in client.session
    assert mail.outbox == []
    assert not AuditEvent.objects.filter(sequence__gt=since).exists()

    right = client.post(MFA, {"code": totp_code()})

    assert right.status_code == 302
    assert right["Location"] == "/admin/"
    assert client.session["_auth_user_id"] == str(staff_user.pk)
    assert client.get("/admin/").status_code == 200
    [event] = AuditEvent.objects.filter(sequence__gt=since)
    assert (event.action, event.actor_id) == ("staff.login", str(staff_user.pk))
    [notice] = mail.outbox
    assert notice.to == [STAFF]


def test_a_recovery_code_works_once(staff_user: User) -> None:
    codes = RecoveryCodes.activate(staff_user).get_unused_codes()
    first = Client()
    password_step(first)
    assert first.post(MFA, {"code": codes[0]})["Location"] == "/admin/"
    again = Client()
    password_step(again)

    reused = again.post(MFA, {"code": codes[0]})

    assert reused.status_code == 200
    assert "Incorrect code." in reused.content.decode()
    assert "_auth_user_id" not in again.session


def test_mfa_is_optional_for_customers(customer_user: User) -> None:
    client = Client()

    response = client.post(LOGIN, {"login": "ada@customer.example", "password": PASSWORD})

    assert response["Location"] == "/"
    assert client.session["_auth_user_id"] == str(customer_user.pk)
    reauthenticate(client)
    assert client.get(SETUP).status_code == 200  # they may set it up


def test_a_totp_code_works_once(staff_user: User) -> None:
    first = Client()
    password_step(first)
    assert first.post(MFA, {"code": totp_code()})["Location"] == "/admin/"
    again = Client()
    password_step(again)

    replayed = again.post(MFA, {"code": totp_code()})

    assert replayed.status_code == 200
    assert "Incorrect code." in replayed.content.decode()
    assert "_auth_user_id" not in again.session
