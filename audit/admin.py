"""Read-only admin for the audit trail: nobody adds, changes or deletes audit rows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from audit.models import AuditEvent
from audit.selectors import audit_events_list
from paymenter.principals import staff_principal

if TYPE_CHECKING:
    _AuditEventAdminBase = admin.ModelAdmin[AuditEvent]
else:  # ModelAdmin is generic only in the stubs (no django_stubs_ext monkeypatch at runtime)
    _AuditEventAdminBase = admin.ModelAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(_AuditEventAdminBase):
    list_display = ("sequence", "occurred_at", "action", "actor_type", "actor_id", "object_type", "object_id")
    list_filter = ("action", "actor_type", "object_type")
    search_fields = ("=object_id", "=actor_id", "=request_id")
    ordering = ("-sequence",)
    show_full_result_count = False  # avoid a second COUNT(*) over a large table
    readonly_fields = (
        "sequence",
        "occurred_at",
        "actor_type",
        "actor_id",
        "action",
        "object_type",
        "object_id",
        "customer_id",
        "payload",
        "request_id",
        "ip",
        "prev_hash",
        "hmac",
        "key_id",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[AuditEvent]:
        return audit_events_list(principal=staff_principal(request))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        return {}
