"""Staff admin of the payments ledger and the webhook inbox: read-only, with two actions.

Rows are written by the ledger's services only. Billing staff (and admins) may mark held
payments as dealt with and re-process failed webhook events; support only looks. Both
actions call services, which audit them with the acting user.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from gateways.models import Payment, PaymentAttempt, PaymentStatus, WebhookEvent, WebhookEventStatus
from gateways.services import payment_held_resolve, webhook_event_reprocess
from paymenter.principals import staff_principal

if TYPE_CHECKING:
    _Base = admin.ModelAdmin[Any]
else:  # ModelAdmin is generic only in the stubs
    _Base = admin.ModelAdmin


class _ReadOnlyAdmin(_Base):
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> list[str]:
        return [field.name for field in self.model._meta.fields]


class HeldFilter(admin.SimpleListFilter):
    title = "needs staff"
    parameter_name = "needs_staff"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Held, not resolved")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.filter(status=PaymentStatus.HELD, resolved_at__isnull=True)
        return queryset


@admin.register(Payment)
class PaymentAdmin(_ReadOnlyAdmin):
    list_display = ("transaction_id", "invoice", "gateway", "amount_minor", "currency", "status", "held_reason")
    list_filter = (HeldFilter, "status", "gateway", "held_reason")
    search_fields = ("=transaction_id", "=invoice__number")
    list_select_related = ("invoice",)
    actions = ("resolve_held",)

    def has_resolve_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("gateways.resolve_held_payment"))

    @admin.action(description="Mark held payments as dealt with", permissions=["resolve"])
    def resolve_held(self, request: HttpRequest, queryset: QuerySet[Payment]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        changed = payment_held_resolve(
            principal=staff_principal(request), payment_ids=ids, user_id=int(request.user.pk or 0)
        )
        self.message_user(request, f"{changed} held payment(s) marked as dealt with.", level=messages.SUCCESS)


@admin.register(PaymentAttempt)
class PaymentAttemptAdmin(_ReadOnlyAdmin):
    list_display = ("id", "invoice", "gateway", "status", "amount_minor", "currency", "created_at", "expires_at")
    list_filter = ("status", "gateway")
    search_fields = ("=gateway_session_id", "=invoice__number")
    list_select_related = ("invoice",)
    exclude = ("redirect_url",)  # a live payment page: not for copying around

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> list[str]:
        return [name for name in super().get_readonly_fields(request, obj) if name != "redirect_url"]


@admin.register(WebhookEvent)
class WebhookEventAdmin(_ReadOnlyAdmin):
    list_display = ("event_id", "gateway", "event_type", "status", "attempts", "last_error", "received_at")
    list_filter = ("status", "gateway", "event_type")
    search_fields = ("=event_id", "=object_id")
    ordering = ("-id",)
    actions = ("reprocess",)

    def has_reprocess_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("gateways.reprocess_webhookevent"))

    @admin.action(description="Re-process selected failed events", permissions=["reprocess"])
    def reprocess(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        principal = staff_principal(request)
        done = 0
        for pk in queryset.exclude(status__in=[WebhookEventStatus.PROCESSED, WebhookEventStatus.IGNORED]).values_list(
            "pk", flat=True
        ):
            status = webhook_event_reprocess(principal=principal, webhook_event_id=pk)
            done += status in (WebhookEventStatus.PROCESSED, WebhookEventStatus.IGNORED)
        self.message_user(request, f"{done} event(s) processed.", level=messages.SUCCESS)
