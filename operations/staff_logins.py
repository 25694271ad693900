"""Staff sign-ins on the audit trail (docs/security.md).

* A successful sign-in of a staff member is one ``staff.login`` event, in its own
  transaction, naming the account (the request's id and client address come with it).
* A failed one is only counted, per client address and window, in Redis
  (``audit.refusals``): a password-guessing run must not write a row per guess. Celery beat
  turns each window into one aggregated ``requests.refused`` event.

Django's ``user_logged_in`` and ``user_login_failed`` signals are its only hook for
sign-ins; ``OperationsConfig.ready`` connects these receivers. Everyone signs in through
allauth's one login page (docs/portal.md), where a failure cannot tell staff from customers
before the account is known, so every failed password counts under the ``staff_login`` kind
(as do wrong MFA codes, ``accounts/receivers.py``). The credentials Django passes with a
failure are never looked at.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from audit.actions import AuditAction
from audit.services import audit_record
from audit.unit_of_work import unit_of_work
from paymenter.client_ip import client_ip
from paymenter.principals import StaffPrincipal
from paymenter.refusals import RefusalKind, refusal_record

# not "invalid_credentials": the audit redactor takes any key naming credentials for a secret
LOGIN_FAILED = "login_failed"


def staff_login_succeeded(sender: Any, request: HttpRequest | None = None, user: Any = None, **kwargs: Any) -> None:
    """``user_logged_in``: audit a staff member's sign-in (anyone else's is not a staff login)."""
    if user is None or user.pk is None or not getattr(user, "is_staff", False):
        return
    principal = StaffPrincipal(user_id=user.pk, username=user.get_username())
    with unit_of_work(principal):
        audit_record(
            action=AuditAction.STAFF_LOGIN,
            principal=principal,
            object_type="user",
            object_id=str(user.pk),
            payload={"username": user.get_username(), "is_superuser": bool(getattr(user, "is_superuser", False))},
        )


def staff_login_failed(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """``user_login_failed``: count the refusal against the client address; never raises."""
    source = client_ip(request) if request is not None else ""
    refusal_record(kind=RefusalKind.STAFF_LOGIN, source=source, reason=LOGIN_FAILED)
