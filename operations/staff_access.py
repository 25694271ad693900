"""Least privilege for staff accounts and groups, and the audit record of every change to them.

A superuser may grant anything. Anyone else who may change users or groups in the admin
(the ``admin`` staff group holds every ``auth`` permission) hands out no more than they hold:

* never superuser or staff status, to anyone, themselves included;
* only membership of groups they belong to, added or removed;
* only permissions they hold (directly or through a group), added to or removed from a user
  or a group;
* no change to, and no deletion of, an account or a group that can do more than they can: a
  superuser, or anyone or any group holding a permission they lack. Setting such an account's
  password, or emptying such a group, would be the escalation.

The rules are pure functions of :class:`Privileges`, which are read from the database, never
from a submitted form alone. The admin (``operations/admin.py``) asks them in the form, for a
clear error, and again on the rows as saved inside its transaction, which a refusal rolls back.

Every change is on the audit chain with the acting staff member, in that same transaction:
``staff.user_*`` and ``staff.group_*`` with the privilege-relevant fields before and after.
Never a password or its hash: a password change records only that it happened.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import Group, Permission, User
from django.db.models import QuerySet

from audit.actions import AuditAction
from audit.services import audit_record
from paymenter.principals import StaffPrincipal
from paymenter.redaction import is_secret_key

USER_OBJECT_TYPE = "user"
GROUP_OBJECT_TYPE = "group"


@dataclass(frozen=True)
class Privileges:
    """What a staff account may do, as the rules compare it and the audit trail records it.

    Permissions are ``"app_label.codename"``. ``effective_permissions`` are the account's own
    and its groups', whether or not it is active (reactivating it would give them back).
    """

    username: str = ""
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False
    groups: frozenset[str] = field(default_factory=frozenset)
    permissions: frozenset[str] = field(default_factory=frozenset)
    effective_permissions: frozenset[str] = field(default_factory=frozenset)

    def as_payload(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "is_active": self.is_active,
            "is_staff": self.is_staff,
            "is_superuser": self.is_superuser,
            "groups": sorted(self.groups),
            "user_permissions": sorted(self.permissions),
        }


NEW_USER = Privileges()
"""What an account holds before it exists: an account created in the admin starts with this."""


@dataclass(frozen=True)
class GroupPrivileges:
    name: str = ""
    permissions: frozenset[str] = field(default_factory=frozenset)
    members: frozenset[str] = field(default_factory=frozenset)  # usernames

    def as_payload(self) -> dict[str, Any]:
        return {"name": self.name, "permissions": sorted(self.permissions), "members": sorted(self.members)}


NEW_GROUP = GroupPrivileges()


# --- reads -------------------------------------------------------------------------------------


def permission_names(permissions: QuerySet[Permission]) -> frozenset[str]:
    pairs = permissions.values_list("content_type__app_label", "codename")
    return frozenset(f"{app_label}.{codename}" for app_label, codename in pairs)


def user_privileges(*, user_id: int, for_update: bool = False) -> Privileges:
    """The account's privileges as stored; ``for_update`` locks its row (inside a transaction)."""
    users = User.objects.select_for_update(no_key=True) if for_update else User.objects.all()
    user = users.only("username", "is_active", "is_staff", "is_superuser").get(pk=user_id)
    own = permission_names(Permission.objects.filter(user=user_id))
    return Privileges(
        username=user.username,
        is_active=user.is_active,
        is_staff=user.is_staff,
        is_superuser=user.is_superuser,
        groups=frozenset(Group.objects.filter(user=user_id).values_list("name", flat=True)),
        permissions=own,
        effective_permissions=own | permission_names(Permission.objects.filter(group__user=user_id)),
    )


def group_privileges(*, group_id: int, for_update: bool = False) -> GroupPrivileges:
    groups = Group.objects.select_for_update(no_key=True) if for_update else Group.objects.all()
    group = groups.get(pk=group_id)
    return GroupPrivileges(
        name=group.name,
        permissions=permission_names(Permission.objects.filter(group=group_id)),
        members=frozenset(User.objects.filter(groups=group_id).values_list("username", flat=True)),
    )


# --- the rules: field -> why not (empty: allowed) --------------------------------------------------


def _listed(names: Iterable[str]) -> str:
    return ", ".join(sorted(names))


def user_change_refusals(*, actor: Privileges, before: Privileges, after: Privileges) -> dict[str, str]:
    """Why ``actor`` may not turn ``before`` into ``after``, per form field."""
    if actor.is_superuser:
        return {}
    refusals: dict[str, str] = {}
    if after.is_superuser != before.is_superuser:
        refusals["is_superuser"] = "Only a superuser can grant or remove superuser status."
    if after.is_staff != before.is_staff:
        refusals["is_staff"] = "Only a superuser can grant or remove staff status."
    groups = (after.groups ^ before.groups) - actor.groups
    if groups:
        refusals["groups"] = (
            f"Only a superuser can add or remove membership of a group you are not a member of: {_listed(groups)}."
        )
    permissions = (after.permissions ^ before.permissions) - actor.effective_permissions
    if permissions:
        refusals["user_permissions"] = (
            f"Only a superuser can grant or remove a permission you do not hold: {_listed(permissions)}."
        )
    return refusals


def user_manage_refusal(*, actor: Privileges, target: Privileges) -> str | None:
    """Why ``actor`` may not change or delete the account ``target`` at all, if they may not."""
    if actor.is_superuser:
        return None
    if target.is_superuser:
        return "Only a superuser can change or delete a superuser."
    if target.effective_permissions - actor.effective_permissions:
        return "Only a superuser can change or delete an account that holds permissions you do not hold."
    return None


def group_change_refusals(*, actor: Privileges, before: GroupPrivileges, after: GroupPrivileges) -> dict[str, str]:
    if actor.is_superuser:
        return {}
    permissions = (after.permissions ^ before.permissions) - actor.effective_permissions
    if permissions:
        return {
            "permissions": f"Only a superuser can grant or remove a permission you do not hold: {_listed(permissions)}."
        }
    return {}


def group_manage_refusal(*, actor: Privileges, target: GroupPrivileges) -> str | None:
    if actor.is_superuser or not target.permissions - actor.effective_permissions:
        return None
    return "Only a superuser can change or delete a group that holds permissions you do not hold."


# --- the audit records (in the caller's transaction) -----------------------------------------


def _field_names(changed_fields: Iterable[str]) -> list[str]:
    # names only, and not even the names of the password inputs
    return sorted(name for name in changed_fields if not is_secret_key(name))


def staff_user_audit_record(
    *,
    action: AuditAction,
    principal: StaffPrincipal,
    user_id: int,
    before: Privileges | None,
    after: Privileges | None,
    changed_fields: Iterable[str] = (),
) -> None:
    audit_record(
        action=action,
        principal=principal,
        object_type=USER_OBJECT_TYPE,
        object_id=str(user_id),
        payload={
            "before": before.as_payload() if before is not None else None,
            "after": after.as_payload() if after is not None else None,
            "changed_fields": _field_names(changed_fields),
        },
    )


def staff_user_password_audit_record(*, principal: StaffPrincipal, user_id: int, username: str, usable: bool) -> None:
    """A password set (or password sign-in disabled) in the admin: that it happened, nothing of it."""
    audit_record(
        action=AuditAction.STAFF_USER_PASSWORD_CHANGED,
        principal=principal,
        object_type=USER_OBJECT_TYPE,
        object_id=str(user_id),
        payload={"username": username, "outcome": "changed" if usable else "disabled"},
    )


def staff_group_audit_record(
    *,
    action: AuditAction,
    principal: StaffPrincipal,
    group_id: int,
    before: GroupPrivileges | None,
    after: GroupPrivileges | None,
    changed_fields: Iterable[str] = (),
) -> None:
    audit_record(
        action=action,
        principal=principal,
        object_type=GROUP_OBJECT_TYPE,
        object_id=str(group_id),
        payload={
            "before": before.as_payload() if before is not None else None,
            "after": after.as_payload() if after is not None else None,
            "changed_fields": _field_names(changed_fields),
        },
    )
