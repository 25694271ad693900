"""Staff admin of the payments ledger and the webhook inbox: read-only, with actions.

Rows are written by the ledger's services only. Billing staff (and admins) may mark held
payments as dealt with, re-process failed webhook events, and refund a payment (the
payment's "Refund" page, ``invoices.process_refund``), and approve or reject a payment in
the fraud review queue (the "fraud review queue" filter, ``gateways.review_payment``);
support only looks. Every action
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
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils.html import format_html

from gateways import bank_transfer_admin as _bank_admin  # noqa: F401 - registers the bank admin
from gateways.models import (
    DailySummary,
    Dispute,
    FraudWarning,
    HeldReason,
    Payment,
    PaymentAttempt,
    PaymentStatus,
    Refund,
    WebhookEvent,
    WebhookEventStatus,
)
from gateways.selectors import payment_refundable
from gateways.services import (
    payment_held_resolve,
    payment_review_approve,
    payment_review_reject,
    refund_request,
    webhook_event_reprocess,
)
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


class FraudReviewQueueFilter(admin.SimpleListFilter):
    """The fraud review queue: payments the rules held for review that nobody decided yet."""

    title = "fraud review queue"
    parameter_name = "fraud_review"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("waiting", "Waiting for review")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "waiting":
            return queryset.filter(
                status=PaymentStatus.HELD, held_reason=HeldReason.RISK_REVIEW, resolved_at__isnull=True
            )
        return queryset


def _assessment_url(assessment_id: object) -> str:
    """The fraud admin's page of an assessment, when the fraud app's admin is installed
    (gateways does not import fraud: it links by the admin's URL name)."""
    if not assessment_id:
        return ""
    try:
        return reverse("admin:fraud_assessment_change", args=[assessment_id])
    except NoReverseMatch:
        return ""


@admin.register(Payment)
class PaymentAdmin(_ReadOnlyAdmin):
    list_display = (
        "transaction_id",
        "invoice",
        "gateway",
        "amount_minor",
        "currency",
        "status",
        "held_reason",
        "risk_assessment",
    )
    list_filter = (FraudReviewQueueFilter, HeldFilter, "status", "gateway", "held_reason")
    search_fields = ("=transaction_id", "=invoice__number")
    list_select_related = ("invoice",)
    actions = ("resolve_held", "review_approve", "review_reject")

    def has_resolve_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("gateways.resolve_held_payment"))

    def has_review_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("gateways.review_payment"))

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> list[str]:
        return [*super().get_readonly_fields(request, obj), "risk_assessment"]

    @admin.display(description="fraud assessment")
    def risk_assessment(self, obj: Payment) -> str:
        """What the rules saw: the assessment's page in the fraud admin (its id otherwise)."""
        url = _assessment_url(obj.risk_assessment_id)
        if url:
            return format_html('<a href="{}">{}</a>', url, obj.risk_assessment_id)
        return str(obj.risk_assessment_id or "-")

    def get_urls(self) -> list[URLPattern]:
        refund = self.admin_site.admin_view(lambda request, object_id: _payment_refund_view(self, request, object_id))
        review = self.admin_site.admin_view(
            lambda request, object_id, decision: _payment_review_view(self, request, object_id, decision)
        )
        return [
            path("<path:object_id>/refund/", refund, name="gateways_payment_refund"),
            path("<path:object_id>/review/<str:decision>/", review, name="gateways_payment_review"),
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        can_refund = request.user.has_perm("invoices.process_refund")
        can_review = (
            self.has_review_permission(request)
            and Payment.objects.filter(
                pk=object_id, status=PaymentStatus.HELD, held_reason=HeldReason.RISK_REVIEW, resolved_at__isnull=True
            ).exists()
        )
        extra = {**(extra_context or {}), "can_refund": can_refund, "can_review": can_review}
        return super().change_view(request, object_id, form_url, extra)

    @admin.action(description="Mark held payments as dealt with", permissions=["resolve"])
    def resolve_held(self, request: HttpRequest, queryset: QuerySet[Payment]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        changed = payment_held_resolve(
            principal=staff_principal(request), payment_ids=ids, user_id=int(request.user.pk or 0)
        )
        self.message_user(request, f"{changed} held payment(s) marked as dealt with.", level=messages.SUCCESS)

    @admin.action(description="Fraud review: approve (the payment counts)", permissions=["review"])
    def review_approve(self, request: HttpRequest, queryset: QuerySet[Payment]) -> None:
        _review_each(self, request, list(queryset.values_list("pk", flat=True)), "approve")

    @admin.action(description="Fraud review: reject (refund it)", permissions=["review"])
    def review_reject(self, request: HttpRequest, queryset: QuerySet[Payment]) -> None:
        _review_each(self, request, list(queryset.values_list("pk", flat=True)), "reject")


REVIEW_DECISIONS = {"approve": payment_review_approve, "reject": payment_review_reject}


def _review_each(model_admin: PaymentAdmin, request: HttpRequest, payment_ids: list[Any], decision: str) -> None:
    """Each payment decided on its own (one refused does not undo another); the services
    check the permission and the payment's state again."""
    decide = REVIEW_DECISIONS[decision]
    principal = staff_principal(request)
    done = 0
    for payment_id in payment_ids:
        try:
            decide(principal=principal, payment_id=payment_id, user_id=int(request.user.pk or 0))
        except PaymenterError as exc:
            model_admin.message_user(
                request, f"Payment {payment_id}: refused ({exc.code}): {exc.message}", level=messages.ERROR
            )
        else:
            done += 1
    if done:
        model_admin.message_user(request, f"{done} payment(s): {decision}d.", level=messages.SUCCESS)


def _payment_review_view(
    model_admin: PaymentAdmin, request: HttpRequest, object_id: str, decision: str
) -> HttpResponse:
    """POST only: approve or reject one payment of the queue (the change page's buttons)."""
    if not model_admin.has_review_permission(request) or decision not in REVIEW_DECISIONS:
        raise PermissionDenied
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    _review_each(model_admin, request, [object_id], decision)
    return HttpResponseRedirect(reverse("admin:gateways_payment_change", args=[object_id]))


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
    found = payment_refundable(principal=principal, payment_id=object_id)
    if found is None:
        raise PermissionDenied
    payment, refundable = found
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
