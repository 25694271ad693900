"""Least privilege in the staff admin: a non-superuser with the right to change users (the
``admin`` group) grants nothing beyond what they hold, whatever the POST says; every change to
users and groups is on the audit chain with its actor and the privileges before and after.

Staff sign in with their password (the test client's real login); each refusal is checked for
what it must not have done: no changed row, no audit event.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django import forms
from django.contrib import admin
from django.contrib.auth.models import Group, Permission, User
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest
from django.test import Client, RequestFactory
from django.urls import reverse

from audit.models import AuditEvent
from paymenter.principals import SystemPrincipal

pytestmark = pytest.mark.django_db

PASSWORD = "an admin's long passphrase 42"
NOT_HELD = ("admin", "delete_logentry")  # a permission the admin group does not hold


# --- helpers -------------------------------------------------------------------------------------


def make_staff(username: str, *groups: str, is_superuser: bool = False, permissions: tuple[str, ...] = ()) -> User:
    if is_superuser:
        user = User.objects.create_superuser(username=username, password=PASSWORD)
    else:
        user = User.objects.create_user(username=username, password=PASSWORD, is_staff=True)
    user.groups.add(*Group.objects.filter(name__in=groups))
    for app_label, codename in (name.split(".") for name in permissions):
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


def signed_in(user: User) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def permission(app_label: str, codename: str) -> Permission:
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def change_url(user: User) -> str:
    return reverse("admin:auth_user_change", args=[user.pk])


def user_form(user: User, **overrides: Any) -> dict[str, Any]:
    """The change form as the admin renders it for ``user`` now, with ``overrides``."""
    data: dict[str, Any] = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": user.is_active,
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
        "groups": [group.pk for group in user.groups.all()],
        "user_permissions": [p.pk for p in user.user_permissions.all()],
        "date_joined_0": user.date_joined.strftime("%d/%m/%Y"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        # a field with a callable default comes with its rendered initial value
        "initial-date_joined_0": user.date_joined.strftime("%d/%m/%Y"),
        "initial-date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "last_login_0": "",
        "last_login_1": "",
        "_save": "Save",
    }
    data.update(overrides)
    for flag in ("is_active", "is_staff", "is_superuser"):  # an unticked box is not sent at all
        if data[flag]:
            data[flag] = "on"
        else:
            del data[flag]
    return data


def account(user: User) -> tuple[Any, ...]:
    """Everything a refused request must have left as it was."""
    stored = User.objects.get(pk=user.pk)
    return (
        stored.username,
        stored.email,
        stored.password,
        stored.is_active,
        stored.is_staff,
        stored.is_superuser,
        sorted(stored.groups.values_list("name", flat=True)),
        sorted(stored.user_permissions.values_list("codename", flat=True)),
    )


def group_state(group: Group) -> tuple[Any, ...]:
    stored = Group.objects.get(pk=group.pk)
    return stored.name, sorted(stored.permissions.values_list("pk", flat=True))


def last_sequence() -> int:
    return AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0


def staff_events_since(sequence: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(sequence__gt=sequence).exclude(action="staff.login").order_by("sequence"))


def form_errors(response: Any) -> dict[str, list[str]]:
    return {field: list(errors) for field, errors in response.context["adminform"].form.errors.items()}


@pytest.fixture
def operator(system_principal: SystemPrincipal) -> User:
    """A member of the admin staff group, not a superuser: may change users and groups."""
    return make_staff("ops-admin", "admin")


@pytest.fixture
def root(system_principal: SystemPrincipal) -> User:
    return make_staff("root", is_superuser=True)


# --- refused escalations: a form error, nothing changed, nothing audited ----------------------------


def test_admin_member_cannot_make_themselves_superuser(operator: User) -> None:
    client = signed_in(operator)
    before, since = account(operator), last_sequence()

    response = client.post(change_url(operator), user_form(operator, is_superuser=True))

    assert response.status_code == 200
    assert form_errors(response) == {"is_superuser": ["Only a superuser can grant or remove superuser status."]}
    assert account(operator) == before
    assert not User.objects.get(pk=operator.pk).is_superuser
    assert staff_events_since(since) == []


def test_admin_member_cannot_grant_staff_status_to_another(operator: User) -> None:
    colleague = User.objects.create_user(username="colleague", password=PASSWORD)
    client = signed_in(operator)
    before, since = account(colleague), last_sequence()

    response = client.post(change_url(colleague), user_form(colleague, is_staff=True, email="c@example.test"))

    assert response.status_code == 200
    assert form_errors(response) == {"is_staff": ["Only a superuser can grant or remove staff status."]}
    assert account(colleague) == before
    assert staff_events_since(since) == []


def test_admin_member_cannot_drop_their_own_staff_status_either(operator: User) -> None:
    client = signed_in(operator)
    before, since = account(operator), last_sequence()

    response = client.post(change_url(operator), user_form(operator, is_staff=False))

    assert form_errors(response) == {"is_staff": ["Only a superuser can grant or remove staff status."]}
    assert account(operator) == before
    assert staff_events_since(since) == []


def test_user_changer_cannot_add_the_admin_group_without_being_a_member(system_principal: SystemPrincipal) -> None:
    # support staff who were also given the right to change users
    changer = make_staff("support-lead", "support", permissions=("auth.view_user", "auth.change_user"))
    client = signed_in(changer)
    before, since = account(changer), last_sequence()
    groups = [Group.objects.get(name="support").pk, Group.objects.get(name="admin").pk]

    response = client.post(change_url(changer), user_form(changer, groups=groups))

    assert response.status_code == 200
    assert form_errors(response) == {
        "groups": ["Only a superuser can add or remove membership of a group you are not a member of: admin."]
    }
    assert account(changer) == before
    assert staff_events_since(since) == []


def test_admin_member_cannot_add_another_group_they_are_not_in(operator: User) -> None:
    colleague = make_staff("colleague")
    client = signed_in(operator)
    before, since = account(colleague), last_sequence()

    response = client.post(change_url(colleague), user_form(colleague, groups=[Group.objects.get(name="billing").pk]))

    assert form_errors(response) == {
        "groups": ["Only a superuser can add or remove membership of a group you are not a member of: billing."]
    }
    assert account(colleague) == before
    assert staff_events_since(since) == []


def test_admin_member_cannot_grant_a_permission_they_lack(operator: User) -> None:
    lacking = permission(*NOT_HELD)
    assert not operator.has_perm("admin.delete_logentry")
    colleague = make_staff("colleague")
    client = signed_in(operator)
    before, since = account(colleague), last_sequence()

    for target in (colleague, operator):
        response = client.post(change_url(target), user_form(target, user_permissions=[lacking.pk]))

        assert response.status_code == 200
        assert form_errors(response) == {
            "user_permissions": [
                "Only a superuser can grant or remove a permission you do not hold: admin.delete_logentry."
            ]
        }
    assert account(colleague) == before
    assert not User.objects.get(pk=operator.pk).user_permissions.exists()
    assert staff_events_since(since) == []


def test_admin_member_cannot_give_a_group_a_permission_they_lack(operator: User) -> None:
    billing = Group.objects.get(name="billing")
    client = signed_in(operator)
    before, since = group_state(billing), last_sequence()
    url = reverse("admin:auth_group_change", args=[billing.pk])

    response = client.post(url, {"name": "billing", "permissions": [*before[1], permission(*NOT_HELD).pk]})

    assert response.status_code == 200
    assert form_errors(response) == {
        "permissions": ["Only a superuser can grant or remove a permission you do not hold: admin.delete_logentry."]
    }
    assert group_state(billing) == before
    assert staff_events_since(since) == []


def test_admin_member_cannot_edit_a_superuser_at_all(operator: User, root: User) -> None:
    client = signed_in(operator)
    before, since = account(root), last_sequence()

    page = client.get(change_url(root))
    change = client.post(change_url(root), user_form(root, email="owned@example.test", is_superuser=False))
    password = client.post(
        reverse("admin:auth_user_password_change", args=[root.pk]),
        {"password1": "taken over 1234567", "password2": "taken over 1234567", "usable_password": "true"},
    )
    delete = client.post(reverse("admin:auth_user_delete", args=[root.pk]), {"post": "yes"})
    bulk = client.post(
        reverse("admin:auth_user_changelist"),
        {"action": "delete_selected", "_selected_action": [root.pk], "post": "yes"},
    )

    assert page.status_code == 200  # read-only: no save button
    assert 'name="_save"' not in page.content.decode()
    assert (change.status_code, password.status_code, delete.status_code) == (403, 403, 403)
    assert bulk.status_code in (200, 403)  # the bulk delete answers "permission denied" for the row
    assert account(root) == before
    assert staff_events_since(since) == []


def test_admin_member_cannot_take_over_an_account_with_more_permissions(operator: User) -> None:
    # setting this account's password would give the operator a permission they lack
    stronger = make_staff("auditor", "billing", permissions=(".".join(NOT_HELD),))
    client = signed_in(operator)
    before, since = account(stronger), last_sequence()

    password = client.post(
        reverse("admin:auth_user_password_change", args=[stronger.pk]),
        {"password1": "taken over 1234567", "password2": "taken over 1234567", "usable_password": "true"},
    )

    assert password.status_code == 403
    assert account(stronger) == before
    assert staff_events_since(since) == []


def save_as_the_admin_does(model_admin: Any, request: HttpRequest, form: Any) -> None:
    """The steps of the change view after a valid form, in its transaction."""
    with transaction.atomic():
        saved = model_admin.save_form(request, form, change=True)
        model_admin.save_model(request, saved, form, True)
        model_admin.save_related(request, form, [], True)


def test_what_slips_past_the_form_is_refused_when_saved_and_rolled_back(operator: User) -> None:
    # a form that forgot the check (a new field, a subclass): the admin's save refuses it anyway
    model_admin = admin.site.get_model_admin(User)
    request = RequestFactory().post(change_url(operator))
    request.user = operator
    checked = model_admin.get_form(request, operator, change=True)

    class Unchecked(checked):  # type: ignore[misc,valid-type]
        def clean(self) -> dict[str, Any]:
            return forms.ModelForm.clean(self) or {}

    form = Unchecked(data=user_form(operator, is_superuser=True), instance=operator)
    before, since = account(operator), last_sequence()
    assert form.is_valid()

    with pytest.raises(PermissionDenied, match="Only a superuser can grant or remove superuser status"):
        save_as_the_admin_does(model_admin, request, form)

    assert account(operator) == before
    assert staff_events_since(since) == []


# --- allowed changes: saved and on the audit chain, with before and after ------------------------------


def test_superuser_grants_superuser_and_staff_and_the_change_is_audited(root: User) -> None:
    target = User.objects.create_user(username="newcomer", password=PASSWORD)
    client = signed_in(root)
    since = last_sequence()
    admin_group = Group.objects.get(name="admin")

    response = client.post(
        change_url(target),
        user_form(
            target,
            is_staff=True,
            is_superuser=True,
            groups=[admin_group.pk],
            user_permissions=[permission(*NOT_HELD).pk],
        ),
    )

    assert response.status_code == 302
    stored = User.objects.get(pk=target.pk)
    assert (stored.is_staff, stored.is_superuser) == (True, True)
    [event] = staff_events_since(since)
    assert (event.action, event.actor_type, event.actor_id) == ("staff.user_changed", "staff", str(root.pk))
    assert (event.object_type, event.object_id) == ("user", str(target.pk))
    assert event.payload == {
        "before": {
            "username": "newcomer",
            "is_active": True,
            "is_staff": False,
            "is_superuser": False,
            "groups": [],
            "user_permissions": [],
        },
        "after": {
            "username": "newcomer",
            "is_active": True,
            "is_staff": True,
            "is_superuser": True,
            "groups": ["admin"],
            "user_permissions": ["admin.delete_logentry"],
        },
        "changed_fields": ["groups", "is_staff", "is_superuser", "user_permissions"],
    }


def test_admin_member_shares_their_own_group_and_it_is_audited(operator: User) -> None:
    colleague = make_staff("colleague")
    client = signed_in(operator)
    since = last_sequence()

    response = client.post(change_url(colleague), user_form(colleague, groups=[Group.objects.get(name="admin").pk]))

    assert response.status_code == 302
    assert list(User.objects.get(pk=colleague.pk).groups.values_list("name", flat=True)) == ["admin"]
    [event] = staff_events_since(since)
    assert (event.action, event.actor_id) == ("staff.user_changed", str(operator.pk))
    assert (event.payload["before"]["groups"], event.payload["after"]["groups"]) == ([], ["admin"])
    assert event.payload["changed_fields"] == ["groups"]


def test_superuser_creates_sets_the_password_of_and_deletes_a_user_each_audited(root: User) -> None:
    client = signed_in(root)
    since = last_sequence()

    created = client.post(
        reverse("admin:auth_user_add"),
        {
            "username": "temp",
            "password1": "a fresh passphrase 77",
            "password2": "a fresh passphrase 77",
            "usable_password": "true",
        },
    )
    temp = User.objects.get(username="temp")
    old_hash = temp.password
    password = client.post(
        reverse("admin:auth_user_password_change", args=[temp.pk]),
        {"password1": "another passphrase 88", "password2": "another passphrase 88", "usable_password": "true"},
    )
    new_hash = User.objects.get(pk=temp.pk).password
    deleted = client.post(reverse("admin:auth_user_delete", args=[temp.pk]), {"post": "yes"})

    assert (created.status_code, password.status_code, deleted.status_code) == (302, 302, 302)
    assert not User.objects.filter(pk=temp.pk).exists()
    events = staff_events_since(since)
    assert [(e.action, e.object_id, e.actor_id) for e in events] == [
        ("staff.user_created", str(temp.pk), str(root.pk)),
        ("staff.user_password_changed", str(temp.pk), str(root.pk)),
        ("staff.user_deleted", str(temp.pk), str(root.pk)),
    ]
    created_event, password_event, deleted_event = events
    assert created_event.payload["before"] is None
    assert created_event.payload["after"]["username"] == "temp"
    assert created_event.payload["after"]["is_staff"] is False
    assert created_event.payload["changed_fields"] == ["username"]  # never the password inputs
    assert password_event.payload == {"username": "temp", "outcome": "changed"}
    assert deleted_event.payload["before"]["username"] == "temp"
    assert deleted_event.payload["after"] is None
    trail = json.dumps([e.payload for e in events])
    for secret in (old_hash, new_hash, "a fresh passphrase 77", "another passphrase 88", "pbkdf2"):
        assert secret not in trail


def test_group_changes_are_audited_with_their_permissions(root: User) -> None:
    client = signed_in(root)
    since = last_sequence()
    view_customer = permission("billing", "view_customer")
    make_staff("member-of-new")

    created = client.post(reverse("admin:auth_group_add"), {"name": "auditors", "permissions": [view_customer.pk]})
    group = Group.objects.get(name="auditors")
    User.objects.get(username="member-of-new").groups.add(group)
    changed = client.post(
        reverse("admin:auth_group_change", args=[group.pk]),
        {"name": "auditors", "permissions": [view_customer.pk, permission(*NOT_HELD).pk]},
    )
    deleted = client.post(reverse("admin:auth_group_delete", args=[group.pk]), {"post": "yes"})

    assert (created.status_code, changed.status_code, deleted.status_code) == (302, 302, 302)
    events = staff_events_since(since)
    assert [(e.action, e.object_type, e.object_id) for e in events] == [
        ("staff.group_created", "group", str(group.pk)),
        ("staff.group_changed", "group", str(group.pk)),
        ("staff.group_deleted", "group", str(group.pk)),
    ]
    assert events[0].payload["after"] == {"name": "auditors", "permissions": ["billing.view_customer"], "members": []}
    assert events[1].payload["before"]["permissions"] == ["billing.view_customer"]
    assert events[1].payload["after"] == {
        "name": "auditors",
        "permissions": ["admin.delete_logentry", "billing.view_customer"],
        "members": ["member-of-new"],
    }
    assert events[2].payload["before"]["members"] == ["member-of-new"]
    assert events[2].payload["after"] is None
