"""The audit admin is read-only for everyone, superusers included."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.models import User
from django.test import RequestFactory

from audit.admin import AuditEventAdmin
from audit.models import AuditEvent


def test_admin_offers_no_add_change_delete_or_bulk_actions() -> None:
    request = RequestFactory().get("/admin/audit/auditevent/")
    request.user = User(username="root", is_staff=True, is_superuser=True, is_active=True)
    model_admin = AuditEventAdmin(AuditEvent, admin.site)

    assert model_admin.has_add_permission(request) is False
    assert model_admin.has_change_permission(request) is False
    assert model_admin.has_delete_permission(request) is False
    assert model_admin.get_actions(request) == {}
    assert model_admin.has_view_permission(request) is True
    assert model_admin.list_filter == ("action", "actor_type", "object_type")
