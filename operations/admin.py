"""Staff accounts and groups in the admin: Django's user and group admin, replaced so that
nobody but a superuser grants more than they hold, and every change is on the audit trail.

Thin: the rules and the audit records are ``operations.staff_access``'s. They are checked
in the form (a clear error on the field, nothing saved) and again on the rows as saved, in
the admin's transaction: whatever slips past the form is refused there (403) and rolled
back with its audit event. A non-superuser sees a superuser, or an account or group that
holds more than they do, read-only. See docs/security.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied
from django.db import router, transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from audit.actions import AuditAction
from operations import staff_access
from operations.staff_access import GroupPrivileges, Privileges
from paymenter.principals import staff_principal

if TYPE_CHECKING:
    _UserAdminBase = UserAdmin[User]
    _UserChangeFormBase = UserChangeForm[User]
    _UserCreationFormBase = AdminUserCreationForm[User]
    _GroupFormBase = forms.ModelForm[Group]
else:  # generic only in the stubs
    _UserAdminBase = UserAdmin
    _UserChangeFormBase = UserChangeForm
    _UserCreationFormBase = AdminUserCreationForm
    _GroupFormBase = forms.ModelForm

_ACTOR = "_staff_access_actor"


def actor_privileges(request: HttpRequest) -> Privileges:
    """The acting staff member's privileges, read once per request."""
    cached = getattr(request, _ACTOR, None)
    if isinstance(cached, Privileges):
        return cached
    actor = staff_access.user_privileges(user_id=staff_principal(request).user_id)
    setattr(request, _ACTOR, actor)
    return actor


def _add_refusals(form: forms.BaseForm, refusals: dict[str, str]) -> None:
    for name, message in refusals.items():
        form.add_error(name if name in form.fields else None, message)


def _refused(refusals: dict[str, str]) -> PermissionDenied:
    return PermissionDenied(" ".join(refusals.values()))


# --- users -------------------------------------------------------------------------------------


def _proposed_user(before: Privileges, cleaned: dict[str, Any]) -> Privileges:
    """``before`` with what the form would change (a field the form lacks stays as it is)."""
    return Privileges(
        username=str(cleaned.get("username", before.username)),
        is_active=bool(cleaned.get("is_active", before.is_active)),
        is_staff=bool(cleaned.get("is_staff", before.is_staff)),
        is_superuser=bool(cleaned.get("is_superuser", before.is_superuser)),
        groups=frozenset(group.name for group in cleaned["groups"]) if "groups" in cleaned else before.groups,
        permissions=(
            staff_access.permission_names(cleaned["user_permissions"])
            if "user_permissions" in cleaned
            else before.permissions
        ),
        effective_permissions=before.effective_permissions,
    )


def _check_user_form(form: forms.ModelForm[User], actor: Privileges | None, cleaned: dict[str, Any]) -> None:
    if actor is None:  # the admin sets it on every form it builds: fail closed without it
        raise forms.ValidationError("Staff accounts can only be changed by a signed-in staff member.")
    pk = form.instance.pk
    before = staff_access.user_privileges(user_id=pk) if pk is not None else staff_access.NEW_USER
    refusals = staff_access.user_change_refusals(actor=actor, before=before, after=_proposed_user(before, cleaned))
    _add_refusals(form, refusals)


class StaffUserChangeForm(_UserChangeFormBase):
    actor: Privileges | None = None  # set per request by StaffUserAdmin.get_form
    privileges_before: Privileges | None = None  # as stored, read under lock by save_model

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or self.cleaned_data
        _check_user_form(self, self.actor, cleaned)
        return cleaned


class StaffUserCreationForm(_UserCreationFormBase):
    actor: Privileges | None = None
    privileges_before: Privileges | None = None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or self.cleaned_data
        _check_user_form(self, self.actor, cleaned)
        return cleaned


admin.site.unregister(User)
admin.site.unregister(Group)


class _PrivilegeGuardedAdmin:
    """What the user and group admins share: the form knows the acting member's privileges,
    and a row that holds more than they do can be neither changed nor deleted by them."""

    def _manage_refusal(self, request: HttpRequest, object_id: int) -> str | None:
        raise NotImplementedError

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)  # type: ignore[misc]
        return type(form.__name__, (form,), {"actor": actor_privileges(request)})

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        allowed: bool = super().has_change_permission(request, obj)  # type: ignore[misc]
        if not allowed or obj is None or obj.pk is None:
            return allowed
        return self._manage_refusal(request, obj.pk) is None

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        allowed: bool = super().has_delete_permission(request, obj)  # type: ignore[misc]
        if not allowed or obj is None or obj.pk is None:
            return allowed
        return self._manage_refusal(request, obj.pk) is None


@admin.register(User)
class StaffUserAdmin(_PrivilegeGuardedAdmin, _UserAdminBase):
    form = StaffUserChangeForm
    add_form = StaffUserCreationForm

    def _manage_refusal(self, request: HttpRequest, user_id: int) -> str | None:
        target = staff_access.user_privileges(user_id=user_id)
        return staff_access.user_manage_refusal(actor=actor_privileges(request), target=target)

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: Any) -> None:
        if change:
            before = staff_access.user_privileges(user_id=obj.pk, for_update=True)
            refusal = staff_access.user_manage_refusal(actor=actor_privileges(request), target=before)
            if refusal is not None:
                raise PermissionDenied(refusal)
            form.privileges_before = before
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: Any) -> None:
        super().save_related(request, form, formsets, change)
        before: Privileges | None = form.privileges_before
        if change and before is None:
            raise PermissionDenied("The account's privileges before the change were not read.")
        user_id = form.instance.pk
        after = staff_access.user_privileges(user_id=user_id)
        refusals = staff_access.user_change_refusals(
            actor=actor_privileges(request), before=before or staff_access.NEW_USER, after=after
        )
        if refusals:
            raise _refused(refusals)
        staff_access.staff_user_audit_record(
            action=AuditAction.STAFF_USER_CHANGED if change else AuditAction.STAFF_USER_CREATED,
            principal=staff_principal(request),
            user_id=user_id,
            before=before,
            after=after,
            changed_fields=form.changed_data,
        )

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        """Django's view, in one transaction with its audit event (it has none of its own)."""
        if request.method != "POST":
            return super().user_change_password(request, id, form_url)
        with transaction.atomic(using=router.db_for_write(self.model)):
            user = self.get_object(request, unquote(id))
            before = user.password if user is not None else None
            response = super().user_change_password(request, id, form_url)
            changed = self.get_object(request, unquote(id)) if user is not None else None
            if changed is not None and changed.password != before:
                staff_access.staff_user_password_audit_record(
                    principal=staff_principal(request),
                    user_id=changed.pk,
                    username=changed.get_username(),
                    usable=changed.has_usable_password(),
                )
        return response

    def delete_model(self, request: HttpRequest, obj: User) -> None:
        user_id = obj.pk
        before = staff_access.user_privileges(user_id=user_id, for_update=True)
        refusal = staff_access.user_manage_refusal(actor=actor_privileges(request), target=before)
        if refusal is not None:
            raise PermissionDenied(refusal)
        super().delete_model(request, obj)
        staff_access.staff_user_audit_record(
            action=AuditAction.STAFF_USER_DELETED,
            principal=staff_principal(request),
            user_id=user_id,
            before=before,
            after=None,
        )

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """The changelist's bulk delete asks for permission without an object: each account
        is checked and audited here, all or none."""
        with transaction.atomic(using=router.db_for_write(self.model)):
            for user in queryset.order_by("pk"):
                self.delete_model(request, user)


# --- groups ------------------------------------------------------------------------------------


class StaffGroupForm(_GroupFormBase):
    actor: Privileges | None = None  # set per request by StaffGroupAdmin.get_form
    privileges_before: GroupPrivileges | None = None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or self.cleaned_data
        if self.actor is None:
            raise forms.ValidationError("Groups can only be changed by a signed-in staff member.")
        pk = self.instance.pk
        before = staff_access.group_privileges(group_id=pk) if pk is not None else staff_access.NEW_GROUP
        if "permissions" in cleaned:
            after = GroupPrivileges(
                name=before.name,
                permissions=staff_access.permission_names(cleaned["permissions"]),
                members=before.members,
            )
            _add_refusals(self, staff_access.group_change_refusals(actor=self.actor, before=before, after=after))
        return cleaned


@admin.register(Group)
class StaffGroupAdmin(_PrivilegeGuardedAdmin, GroupAdmin):
    form = StaffGroupForm

    def _manage_refusal(self, request: HttpRequest, group_id: int) -> str | None:
        target = staff_access.group_privileges(group_id=group_id)
        return staff_access.group_manage_refusal(actor=actor_privileges(request), target=target)

    def save_model(self, request: HttpRequest, obj: Group, form: Any, change: Any) -> None:
        if change:
            before = staff_access.group_privileges(group_id=obj.pk, for_update=True)
            refusal = staff_access.group_manage_refusal(actor=actor_privileges(request), target=before)
            if refusal is not None:
                raise PermissionDenied(refusal)
            form.privileges_before = before
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: Any) -> None:
        super().save_related(request, form, formsets, change)
        before: GroupPrivileges | None = form.privileges_before
        if change and before is None:
            raise PermissionDenied("The group's permissions before the change were not read.")
        group_id = form.instance.pk
        after = staff_access.group_privileges(group_id=group_id)
        refusals = staff_access.group_change_refusals(
            actor=actor_privileges(request), before=before or staff_access.NEW_GROUP, after=after
        )
        if refusals:
            raise _refused(refusals)
        staff_access.staff_group_audit_record(
            action=AuditAction.STAFF_GROUP_CHANGED if change else AuditAction.STAFF_GROUP_CREATED,
            principal=staff_principal(request),
            group_id=group_id,
            before=before,
            after=after,
            changed_fields=form.changed_data,
        )

    def delete_model(self, request: HttpRequest, obj: Group) -> None:
        group_id = obj.pk
        before = staff_access.group_privileges(group_id=group_id, for_update=True)
        refusal = staff_access.group_manage_refusal(actor=actor_privileges(request), target=before)
        if refusal is not None:
            raise PermissionDenied(refusal)
        super().delete_model(request, obj)
        staff_access.staff_group_audit_record(
            action=AuditAction.STAFF_GROUP_DELETED,
            principal=staff_principal(request),
            group_id=group_id,
            before=before,
            after=None,
        )

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        with transaction.atomic(using=router.db_for_write(self.model)):
            for group in queryset.order_by("pk"):
                self.delete_model(request, group)
