"""Staff sign-ins on the audit trail: a success is one ``staff.login`` event; failures are
counted per client address in Redis and become ONE aggregated ``requests.refused`` event per
address and window (audit/refusals.py), never a row per guess. Real logins through the login
page (allauth's, which the admin's redirects to); real Redis (the test's own database, flushed
after each test). The MFA step is tested in tests/accounts/; these users have no authenticator."""

from __future__ import annotations

import time
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings as django_settings
from django.contrib.auth.models import Group, User
from django.test import Client

from audit.models import AuditEvent
from audit.refusals import refusals_flush
from paymenter.principals import SystemPrincipal
from paymenter.refusals import CLOSE_GRACE_SECONDS

pytestmark = [pytest.mark.django_db, pytest.mark.staff_without_mfa]

LOGIN = "/accounts/login/"
EMAIL = "ops-admin@example.com"
PASSWORD = "an admin's long passphrase 42"
ATTACKER = "203.0.113.77"


@pytest.fixture
def operator(system_principal: SystemPrincipal) -> User:
    user = User.objects.create_user(username="ops-admin", email=EMAIL, password=PASSWORD, is_staff=True)
    EmailAddress.objects.create(user=user, email=EMAIL, verified=True, primary=True)
    user.groups.add(Group.objects.get(name="admin"))
    return user


def last_sequence() -> int:
    return AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0


def events_since(sequence: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(sequence__gt=sequence).order_by("sequence"))


def test_a_staff_login_is_one_audit_event(operator: User) -> None:
    since = last_sequence()

    response = Client().post(LOGIN, {"login": EMAIL, "password": PASSWORD, "next": "/admin/"})

    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    [event] = events_since(since)
    assert (event.action, event.actor_type, event.actor_id) == ("staff.login", "staff", str(operator.pk))
    assert (event.object_type, event.object_id) == ("user", str(operator.pk))
    assert event.payload == {"username": "ops-admin", "is_superuser": False}
    assert event.ip == "127.0.0.1"


def test_failed_logins_are_counted_and_audited_once_per_address_and_window(operator: User, settings: Any) -> None:
    settings.REFUSAL_WINDOW_SECONDS = 3600  # the three attempts fall in one window
    since = last_sequence()
    client = Client(REMOTE_ADDR=ATTACKER)

    answers = [client.post(LOGIN, {"login": EMAIL, "password": f"guess {n}", "next": "/admin/"}) for n in range(3)]

    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert all("The email address and/or password you specified are not correct" in a.content.decode() for a in answers)
    assert "_auth_user_id" not in client.session
    assert events_since(since) == []  # counted in Redis only, not a row per guess

    refusals_flush(now=time.time() + django_settings.REFUSAL_WINDOW_SECONDS + CLOSE_GRACE_SECONDS + 1)

    refused = [
        event
        for event in events_since(since)
        if event.action == "requests.refused" and event.payload["source"] == ATTACKER
    ]
    assert len(refused) == 1
    [event] = refused
    assert (event.actor_type, event.actor_id, event.object_type) == ("system", "worker:refusals", "request_source")
    assert event.object_id.startswith("staff_login:")
    assert event.object_id.endswith(f":{ATTACKER}")
    assert (event.payload["kind"], event.payload["count"]) == ("staff_login", 3)
    assert event.payload["reasons"] == {"login_failed": 3}
    assert [e.action for e in events_since(since)] == ["requests.refused"]  # no staff.login
    assert "guess" not in str(event.payload)
