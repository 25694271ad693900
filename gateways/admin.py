"""Staff admin of the payments ledger and the webhook inbox: read-only, with actions.

Rows are written by the ledger's services only. Billing staff (and admins) may mark held
payments as dealt with, re-process failed webhook events, and refund a payment (the
payment's "Refund" page, ``invoices.process_refund``); support only looks. Every action
calls a service, which audits it with the acting user. Refunds, disputes, fraud warnings
and daily summaries are listed read-only; bank transfers and statements live in
``gateways.bank_transfer_admin`` (imported below, so the admin site registers them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from audit.unit_of_work import unit_of_work
from gateways import bank_transfer_admin as _bank_admin  # noqa: F401 - registers the bank admin
from gateways.models import (
    DailySummary,
    Dispute,
    FraudWarning,
    Payment,
    PaymentAttempt,
    PaymentStatus,
    Refund,
    WebhookEvent,
    WebhookEventStatus,
)
from gateways.services import payment_held_resolve, refund_request, webhook_event_reprocess
from gateways.services.refunds import payment_refundable_minor
from paymenter.errors import PaymenterError
from paymenter.money import Money, MoneyError
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

    def get_urls(self) -> list[URLPattern]:
        refund = self.admin_site.admin_view(lambda request, object_id: _payment_refund_view(self, request, object_id))
        return [path("<path:object_id>/refund/", refund, name="gateways_payment_refund"), *super().get_urls()]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        can_refund = request.user.has_perm("invoices.process_refund")
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "can_refund": can_refund})

    @admin.action(description="Mark held payments as dealt with", permissions=["resolve"])
    def resolve_held(self, request: HttpRequest, queryset: QuerySet[Payment]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        changed = payment_held_resolve(
            principal=staff_principal(request), payment_ids=ids, user_id=int(request.user.pk or 0)
        )
        self.message_user(request, f"{changed} held payment(s) marked as dealt with.", level=messages.SUCCESS)


class RefundForm(forms.Form):
    amount = forms.CharField(
        max_length=32, help_text="In the payment's currency, e.g. 12.50; at most what is left to refund."
    )
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 3}), required=False)

    def __init__(self, *args: Any, currency: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.currency = currency

    def clean_amount(self) -> Money:
        try:
            return Money.parse(self.cleaned_data["amount"], self.currency)
        except MoneyError as exc:
            raise forms.ValidationError(exc.message) from None


def _payment_refund_view(model_admin: PaymentAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    """GET: the form, with what is left to refund. POST: ``refund_request`` (the service
    checks everything again under the invoice's lock; this page only shows its answer)."""
    if not request.user.has_perm("invoices.process_refund"):
        raise PermissionDenied
    principal = staff_principal(request)
    with unit_of_work(principal):
        payment = Payment.objects.select_related("invoice").filter(pk=object_id).first()
        if payment is None:
            raise PermissionDenied
        refundable = Money(payment_refundable_minor(payment), payment.currency)
    form = RefundForm(request.POST or None, currency=payment.currency)
    if request.method == "POST" and form.is_valid():
        try:
            refund = refund_request(
                principal=principal,
                payment_id=payment.pk,
                amount=form.cleaned_data["amount"],
                reason=form.cleaned_data["reason"],
                user_id=int(request.user.pk or 0),
            )
        except PaymenterError as exc:
            model_admin.message_user(request, f"Refund refused ({exc.code}): {exc.message}", level=messages.ERROR)
        else:
            note = f", credit note {refund.credit_note.number}" if refund.credit_note else ""
            model_admin.message_user(
                request,
                f"Refund of {Money(refund.amount_minor, refund.currency).format()} {refund.status}{note}.",
                level=messages.SUCCESS,
            )
            return HttpResponseRedirect(reverse("admin:gateways_payment_change", args=[payment.pk]))
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Refund payment {payment.transaction_id}",
        "payment": payment,
        "refundable": refundable,
        "form": form,
        "opts": model_admin.model._meta,
    }
    return TemplateResponse(request, "admin/gateways/payment/refund.html", context)


@admin.register(Refund)
class RefundAdmin(_ReadOnlyAdmin):
    list_display = ("id", "invoice", "gateway", "amount_minor", "currency", "status", "origin", "created_at")
    list_filter = ("status", "origin", "gateway")
    search_fields = ("=gateway_refund_id", "=invoice__number")
    list_select_related = ("invoice",)


@admin.register(Dispute)
class DisputeAdmin(_ReadOnlyAdmin):
    list_display = ("gateway_dispute_id", "invoice", "gateway", "amount_minor", "currency", "status", "opened_at")
    list_filter = ("status", "gateway")
    search_fields = ("=gateway_dispute_id", "=invoice__number")
    list_select_related = ("invoice",)


@admin.register(FraudWarning)
class FraudWarningAdmin(_ReadOnlyAdmin):
    list_display = ("gateway_warning_id", "invoice", "gateway", "fraud_type", "actionable", "created_at")
    list_filter = ("gateway", "fraud_type", "actionable")
    search_fields = ("=gateway_warning_id", "=invoice__number")
    list_select_related = ("invoice",)


@admin.register(DailySummary)
class DailySummaryAdmin(_ReadOnlyAdmin):
    list_display = ("period_start", "gateway", "recorded_count", "reported_count", "has_differences")
    list_filter = ("gateway",)

    @admin.display(boolean=True, description="differences")
    def has_differences(self, obj: DailySummary) -> bool:
        return obj.has_differences


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
