"""Who is acting: the principal every selector, service and audit record is given.

A principal decides two things: which rows PostgreSQL row-level security lets the
transaction see (``rls_scope``), and who the audit trail names as the actor.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest


class ScopeKind(StrEnum):
    """Values of the ``paymenter.scope`` transaction setting the RLS policies read."""

    CUSTOMER = "customer"  # only rows of ``customer_ids``
    STAFF = "staff"  # every customer's rows (Django admin, staff users)
    SYSTEM = "system"  # every customer's rows (management commands, workers, O2S API)


@dataclass(frozen=True)
class CustomerPrincipal:
    """A portal user acting for the customers they are a member of."""

    user_id: int
    customer_ids: frozenset[uuid.UUID]
    scope_kind: ScopeKind = field(default=ScopeKind.CUSTOMER, init=False)

    @property
    def actor_type(self) -> str:
        return "customer_user"

    @property
    def actor_id(self) -> str:
        return str(self.user_id)


@dataclass(frozen=True)
class StaffPrincipal:
    """A member of staff (admin, billing or support group) using the Django admin."""

    user_id: int
    username: str = ""
    scope_kind: ScopeKind = field(default=ScopeKind.STAFF, init=False)

    @property
    def actor_type(self) -> str:
        return "staff"

    @property
    def actor_id(self) -> str:
        return str(self.user_id)


@dataclass(frozen=True)
class SystemPrincipal:
    """The system itself: a management command, a worker, a migration of data.

    ``label`` names the entry point, e.g. ``"command:rotate_encryption_key"``.
    """

    label: str
    scope_kind: ScopeKind = field(default=ScopeKind.SYSTEM, init=False)

    @property
    def actor_type(self) -> str:
        return "system"

    @property
    def actor_id(self) -> str:
        return self.label


@dataclass(frozen=True)
class ApiKeyPrincipal:
    """O2S calling the REST API with one of its keys. O2S manages every customer's
    billing, so it acts with system scope; the audit trail names the key."""

    api_key_id: uuid.UUID
    name: str = ""
    can_invoice_custom_lines: bool = False
    rate_limit_per_minute: int = 600  # carried so the throttle needs no query
    scope_kind: ScopeKind = field(default=ScopeKind.SYSTEM, init=False)

    @property
    def actor_type(self) -> str:
        return "api_key"

    @property
    def actor_id(self) -> str:
        return str(self.api_key_id)


Principal = CustomerPrincipal | StaffPrincipal | SystemPrincipal | ApiKeyPrincipal


def staff_principal(request: HttpRequest) -> StaffPrincipal:
    """The staff member acting in an admin request, as the services and the audit trail
    name them. The admin lets only logged-in staff this far; anything else is refused."""
    user = request.user
    if user.pk is None or not getattr(user, "is_staff", False):
        raise PermissionDenied
    return StaffPrincipal(user_id=user.pk, username=str(getattr(user, "username", "")))
