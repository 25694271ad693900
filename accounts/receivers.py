"""What a sign-in and an MFA change cause: an audit event and a notification e-mail.

allauth's signals are its hooks for these; they fire only for a real sign-in through
allauth (password, then the MFA code when the user has one), never for a session made by
``Client.force_login`` or an admin's ``login()`` call. Staff sign-ins are audited by
``operations.staff_logins`` (Django's ``user_logged_in``); failed sign-ins, password or
MFA code, are counted per client address there and audited in aggregate
(``audit/refusals.py``), never a row per guess.
"""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import get_adapter
from allauth.account.signals import password_reset, user_logged_in
from allauth.mfa.signals import authentication_failed, authenticator_added, authenticator_removed, authenticator_reset
from django.http import HttpRequest

from accounts.invitations import email_verified_by_password_reset
from audit.actions import AuditAction
from audit.services import audit_record
from audit.unit_of_work import unit_of_work
from billing.selectors import principal_for_user
from paymenter.client_ip import client_ip
from paymenter.refusals import RefusalKind, refusal_record

NEW_LOGIN_MAIL = "account/email/new_login"
MFA_FAILED = "mfa_code_refused"


def login_notified(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    """A completed sign-in: mail the account's owner (a stolen password shows), and audit a
    customer user's sign-in (a staff member's is ``staff.login``)."""
    get_adapter(request).send_notification_mail(NEW_LOGIN_MAIL, user)
    if getattr(user, "is_staff", False):
        return
    _audit(user, AuditAction.ACCOUNT_LOGIN, {"email": user.email})


def _audit(user: Any, action: AuditAction, payload: dict[str, Any]) -> None:
    principal = principal_for_user(user)
    if principal is None:
        return
    with unit_of_work(principal):
        audit_record(action=action, principal=principal, object_type="user", object_id=str(user.pk), payload=payload)


def _authenticator_changed(action: AuditAction) -> Any:
    def receiver(sender: Any, request: HttpRequest | None = None, user: Any = None, **kwargs: Any) -> None:
        authenticator = kwargs.get("authenticator")
        kind = str(getattr(authenticator, "type", ""))
        _audit(user, action, {"type": kind})

    return receiver


mfa_added = _authenticator_changed(AuditAction.ACCOUNT_MFA_ADDED)
mfa_removed = _authenticator_changed(AuditAction.ACCOUNT_MFA_REMOVED)
mfa_reset = _authenticator_changed(AuditAction.ACCOUNT_MFA_RESET)


def mfa_failed(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """A wrong TOTP or recovery code: counted like a wrong password, never a row per guess."""
    source = client_ip(request) if request is not None else ""
    refusal_record(kind=RefusalKind.STAFF_LOGIN, source=source, reason=MFA_FAILED)


def connect() -> None:
    user_logged_in.connect(login_notified, dispatch_uid="accounts.login_notified")
    authenticator_added.connect(mfa_added, dispatch_uid="accounts.mfa_added")
    authenticator_removed.connect(mfa_removed, dispatch_uid="accounts.mfa_removed")
    authenticator_reset.connect(mfa_reset, dispatch_uid="accounts.mfa_reset")
    authentication_failed.connect(mfa_failed, dispatch_uid="accounts.mfa_failed")
    password_reset.connect(email_verified_by_password_reset, dispatch_uid="accounts.email_verified_by_reset")
