"""Inviting a person to one customer: the command and the admin action make (or reuse) the user,
grant that customer only, mail a set-password link, and audit; the link sets a password that
logs in. Refusals write nothing and send nothing."""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth.models import User
from django.core import mail
from django.core.management import CommandError, call_command
from django.test import Client
from guardian.shortcuts import get_perms

from audit.models import AuditEvent
from billing.models import Customer, CustomerMembership
from paymenter.principals import SystemPrincipal
from tests.accounts.conftest import PASSWORD
from tests.factories import make_customer

pytestmark = pytest.mark.django_db

LINK = re.compile(r"http://127\.0\.0\.1:8000(/accounts/password/reset/key/\S+/)")


def last_sequence() -> int:
    return AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0


@pytest.fixture
def customers(system_principal: SystemPrincipal) -> tuple[Customer, Customer]:
    return make_customer(name="Battery Point Hosting"), make_customer(name="Sandy Bay Web")


def test_the_command_invites_a_new_user_to_one_customer(customers: tuple[Customer, Customer]) -> None:
    mine, other = customers
    since = last_sequence()

    call_command("invite_customer_user", customer=mine.external_id, email="Grace@Example.com")

    user = User.objects.get(email="grace@example.com")
    assert not user.has_usable_password()
    assert not user.is_staff
    assert sorted(get_perms(user, mine)) == ["pay_customer_invoices", "view_customer_invoices"]
    assert get_perms(user, other) == []
    assert list(CustomerMembership.objects.filter(user=user).values_list("customer_id", flat=True)) == [mine.id]
    actions = list(AuditEvent.objects.filter(sequence__gt=since).order_by("sequence").values_list("action", "payload"))
    assert actions[-1] == (
        "customer.user_invited",
        {"user_id": user.pk, "email": "grace@example.com", "new_user": True},
    )
    assert [action for action, _ in actions] == ["customer.access_granted", "customer.user_invited"]
    [invitation] = mail.outbox
    assert invitation.to == ["grace@example.com"]
    assert "Battery Point Hosting" in invitation.subject
    assert LINK.search(str(invitation.body))


def test_the_invitation_link_sets_the_password_and_the_user_logs_in(customers: tuple[Customer, Customer]) -> None:
    call_command("invite_customer_user", customer=str(customers[0].id), email="grace@example.com")
    match = LINK.search(str(mail.outbox[0].body))
    assert match is not None
    client = Client()
    form_url = client.get(match.group(1))["Location"]

    response = client.post(form_url, {"password1": PASSWORD, "password2": PASSWORD})

    assert response.status_code == 302
    assert EmailAddress.objects.get(email="grace@example.com").verified
    login = Client().post("/accounts/login/", {"login": "grace@example.com", "password": PASSWORD})
    assert login["Location"] == "/"
    # the link works once
    assert Client().get(match.group(1)).status_code in (200, 302)
    reused = Client()
    reused_form = reused.get(match.group(1))
    assert reused_form.status_code == 200 or "set-password" not in reused_form["Location"]


def test_inviting_an_existing_user_reuses_it(customers: tuple[Customer, Customer]) -> None:
    mine, other = customers
    call_command("invite_customer_user", customer=mine.external_id, email="grace@example.com")

    call_command("invite_customer_user", customer=other.external_id, email="GRACE@example.com")

    [user] = User.objects.filter(email__iexact="grace@example.com")
    assert get_perms(user, other) != []
    assert len(mail.outbox) == 2


@pytest.mark.parametrize(
    ("customer", "email", "message"),
    [
        ("no-such-customer", "grace@example.com", "no customer 'no-such-customer'"),
        (None, "ops@paymenter.example", "staff users cannot be customer members"),
        (None, "not-an-address", "enter a valid e-mail address"),
    ],
)
def test_refused_invitations_write_nothing(
    customers: tuple[Customer, Customer], customer: str | None, email: str, message: str
) -> None:
    User.objects.create_user(username="ops", email="ops@paymenter.example", is_staff=True)
    users = User.objects.count()
    since = last_sequence()

    with pytest.raises(CommandError, match=message):
        call_command("invite_customer_user", customer=customer or customers[0].external_id, email=email)

    assert User.objects.count() == users
    assert not EmailAddress.objects.exists()
    assert not AuditEvent.objects.filter(sequence__gt=since).exists()
    assert mail.outbox == []


def test_the_admin_action_invites(customers: tuple[Customer, Customer]) -> None:
    mine, other = customers
    admin_user = User.objects.create_superuser(username="root", email="root@paymenter.example", password=PASSWORD)
    client = Client()
    client.force_login(admin_user)
    changelist = "/admin/billing/customer/"

    form = client.post(changelist, {"action": "invite_customer_user", "_selected_action": [str(mine.pk)]})
    assert form.status_code == 200
    assert "Send the invitation" in form.content.decode()
    assert mail.outbox == []

    done = client.post(
        changelist,
        {
            "action": "invite_customer_user",
            "_selected_action": [str(mine.pk)],
            "email": "linus@example.com",
            "invite": "Send the invitation",
        },
    )

    assert done.status_code == 302
    user = User.objects.get(email="linus@example.com")
    assert get_perms(user, mine) != []
    assert get_perms(user, other) == []
    [invitation] = mail.outbox
    assert invitation.to == ["linus@example.com"]
    assert AuditEvent.objects.filter(action="customer.user_invited", customer_id=mine.id).count() == 1
