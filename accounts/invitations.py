"""Inviting a person to a customer's portal (docs/portal.md).

An invitation makes (or reuses) the user for an e-mail address, grants it the customer's
object permissions (``billing.services.customer_grant_access``: view and pay that customer's
invoices, nothing else), is audited as ``customer.user_invited``, and mails a link that sets
the password: allauth's password-reset key, so the link expires and works once, like any
reset. Setting the password through it proves the address, which is then marked verified.
The mail is sent after the transaction commits, never while it is open.
"""

from __future__ import annotations

import uuid
from typing import Any

from allauth.account.forms import default_token_generator
from allauth.account.models import EmailAddress
from allauth.account.utils import user_pk_to_url_str
from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse

from audit.actions import AuditAction
from audit.services import audit_record
from audit.unit_of_work import unit_of_work
from billing.errors import InvalidCustomerError
from billing.selectors import customer_get
from billing.services import customer_grant_access
from paymenter.principals import Principal

INVITATION_MAIL = "accounts/email/invitation"


def customer_user_invite(*, principal: Principal, customer_id: uuid.UUID | str, email: str) -> User:
    """Invite ``email`` to the customer ``customer_id``; returns the (new or existing) user."""
    address = email.strip().lower()
    if "@" not in address or len(address) > 150:
        raise InvalidCustomerError({"email": ["enter a valid e-mail address"]})
    with unit_of_work(principal):
        customer = customer_get(principal=principal, customer_id=customer_id)
        user = User.objects.select_for_update().filter(email__iexact=address).order_by("pk").first()
        created = user is None
        if user is None:
            user = User.objects.create_user(username=address, email=address)  # no usable password yet
        EmailAddress.objects.get_or_create(user=user, email=address, defaults={"primary": True, "verified": False})
        customer_grant_access(principal=principal, customer_id=customer.id, user=user)
        audit_record(
            action=AuditAction.CUSTOMER_USER_INVITED,
            principal=principal,
            object_type="customer",
            object_id=str(customer.id),
            customer_id=customer.id,
            payload={"user_id": user.pk, "email": address, "new_user": created},
        )
        customer_name = customer.name
    _send_invitation(user=user, email=address, customer_name=customer_name)
    return user


def _send_invitation(*, user: User, email: str, customer_name: str) -> None:
    key = default_token_generator.make_token(user)
    path = reverse("account_reset_password_from_key", kwargs={"uidb36": user_pk_to_url_str(user), "key": key})
    context: dict[str, Any] = {
        "customer_name": customer_name,
        "seller_name": settings.SELLER_NAME,
        "set_password_url": f"{settings.PUBLIC_BASE_URL}{path}",
    }
    subject = render_to_string(f"{INVITATION_MAIL}_subject.txt", context).strip()
    body = render_to_string(f"{INVITATION_MAIL}_message.txt", context)
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [email])


def email_verified_by_password_reset(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    """allauth's ``password_reset``: the key came by mail to the user's addresses, so using it
    proves them (an invited user is not asked to verify again)."""
    if user is not None:
        EmailAddress.objects.filter(user=user, verified=False).update(verified=True)
