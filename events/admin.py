"""Staff admin of the outbox: read-only, with one action that calls ``outbox_redeliver``.

Rows are written by services and changed by workers only; staff look (``view_outboxmessage``:
billing and admin groups) and may put dead or delivered messages back in the queue
("Redeliver selected", ``change_outboxmessage``). Nobody adds, edits or deletes a row here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from events.delivery import outbox_redeliver
from paymenter.models import OutboxMessage
from paymenter.principals import staff_principal

if TYPE_CHECKING:
    _OutboxAdminBase = admin.ModelAdmin[OutboxMessage]
else:  # ModelAdmin is generic only in the stubs
    _OutboxAdminBase = admin.ModelAdmin

REDELIVER_PERMISSION = "paymenter.change_outboxmessage"
OUTBOX_FIELDS = (
    "id",
    "event_id",
    "topic",
    "ordering_key",
    "customer_id",
    "status",
    "attempts",
    "created_at",
    "next_attempt_at",
    "last_attempt_at",
    "last_error",
    "delivered_at",
    "payload",
)


@admin.register(OutboxMessage)
class OutboxMessageAdmin(_OutboxAdminBase):
    list_display = ("event_id", "topic", "status", "attempts", "next_attempt_at", "last_error", "created_at")
    list_filter = ("status", "topic")
    search_fields = ("=event_id", "=ordering_key")
    ordering = ("-id",)
    show_full_result_count = False
    fields = OUTBOX_FIELDS
    readonly_fields = OUTBOX_FIELDS
    actions = ("redeliver_selected",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the change permission grants the redeliver action, not edits

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_redeliver_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(REDELIVER_PERMISSION))

    @admin.action(description="Redeliver selected", permissions=["redeliver"])
    def redeliver_selected(self, request: HttpRequest, queryset: QuerySet[OutboxMessage]) -> None:
        requested = list(queryset.values_list("pk", flat=True))
        event_ids = outbox_redeliver(principal=staff_principal(request), message_ids=requested)
        skipped = len(requested) - len(event_ids)
        if event_ids:
            self.message_user(request, f"Queued {len(event_ids)} message(s) for redelivery.", level=messages.SUCCESS)
        if skipped:
            self.message_user(request, f"{skipped} message(s) still pending: left as they are.", level=messages.WARNING)
