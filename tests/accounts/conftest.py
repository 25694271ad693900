"""Users for the login tests: real accounts with a verified e-mail, logged in through allauth's
pages with the Django test client. TOTP codes are computed at a fixed moment (``NOW``): the
TOTP module's clock is pinned, so no test depends on the time it runs at."""

from __future__ import annotations

import types

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.totp.internal import auth as totp_auth
from django.contrib.auth.models import Group, User

from paymenter.principals import SystemPrincipal
from tests.conftest import STAFF_TOTP_SECRET

PASSWORD = "a customer's long passphrase 42"
NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z: every TOTP code below is computed for this moment


def totp_code(secret: str = STAFF_TOTP_SECRET, at: float = NOW) -> str:
    return str(totp_auth.format_hotp_value(totp_auth.hotp_value(secret, int(at) // 30)))


@pytest.fixture(autouse=True)
def _pinned_totp_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(totp_auth, "time", types.SimpleNamespace(time=lambda: NOW))


def make_user(email: str, *, staff: bool = False, verified: bool = True) -> User:
    user = User.objects.create_user(username=email, email=email, password=PASSWORD, is_staff=staff)
    EmailAddress.objects.create(user=user, email=email, verified=verified, primary=True)
    if staff:
        user.groups.add(Group.objects.get(name="admin"))
    return user


@pytest.fixture
def customer_user(system_principal: SystemPrincipal) -> User:
    return make_user("ada@customer.example")


@pytest.fixture
def staff_user(system_principal: SystemPrincipal) -> User:
    """A staff member with a confirmed TOTP authenticator (tests/conftest.py)."""
    return make_user("ops@paymenter.example", staff=True)
