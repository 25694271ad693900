"""The audit admin is read-only for everyone, superusers included."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.db import transaction
from django.template.response import TemplateResponse
from django.test import RequestFactory

from audit.actions import AuditAction
from audit.admin import AuditEventAdmin
from audit.models import AuditEvent
from audit.services import audit_record
from paymenter import rls
from paymenter.principals import StaffPrincipal


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


@pytest.mark.django_db
def test_staff_scope_lists_and_filters_events_in_the_admin() -> None:
    staff_user = User.objects.create(username="auditor", is_staff=True, is_superuser=True, is_active=True)
    with rls.acting_as(StaffPrincipal(user_id=staff_user.pk, username="auditor")):
        with transaction.atomic():
            event = audit_record(action=AuditAction.INVOICE_VOIDED, object_type="invoice", object_id="INV-9")
        request = RequestFactory().get("/admin/audit/auditevent/", {"action": "invoice.voided", "q": "INV-9"})
        request.user = staff_user
        response = AuditEventAdmin(AuditEvent, admin.site).changelist_view(request)
        assert isinstance(response, TemplateResponse)
        response.render()

    assert response.status_code == 200
    assert response.context_data is not None
    assert [row.sequence for row in response.context_data["cl"].result_list] == [event.sequence]
    assert b"Add audit event" not in response.content
