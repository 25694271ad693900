"""The fraud rules in the admin (docs/fraud.md).

* Rules: the admin group changes a rule's ``enabled`` and configuration through a form that
  validates the configuration with the rule's own parser (an unknown country, a negative
  threshold, an unknown currency are refused on the form, nothing written), saved by
  ``fraud.services.rule_config_update`` (audited, before and after). Nobody adds or
  deletes a rule: the rules are code. Billing and support view.
* Assessments: read-only for every staff group, filtered by stage, decision and the rule
  that fired, by date: the fraud decisions over time.
* Customer risk flags: read-only but for the "clear" action (billing and admin).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from fraud.models import Assessment, CustomerRiskFlag, Decision, RuleConfig
from fraud.rules import RULES, RuleConfigError, rule_config_parse
from fraud.services import customer_risk_clear, rule_config_update
from paymenter.principals import staff_principal

if TYPE_CHECKING:
    _RuleConfigAdminBase = admin.ModelAdmin[RuleConfig]
    _AssessmentAdminBase = admin.ModelAdmin[Assessment]
    _RiskFlagAdminBase = admin.ModelAdmin[CustomerRiskFlag]
    _RuleConfigFormBase = forms.ModelForm[RuleConfig]
else:  # the admin/form classes are generic only in the stubs
    _RuleConfigAdminBase = admin.ModelAdmin
    _AssessmentAdminBase = admin.ModelAdmin
    _RiskFlagAdminBase = admin.ModelAdmin
    _RuleConfigFormBase = forms.ModelForm


class RuleConfigForm(_RuleConfigFormBase):
    class Meta:
        model = RuleConfig
        fields = ("enabled", "config")

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        if "config" in cleaned:
            try:
                rule_config_parse(self.instance.name, cleaned["config"])
            except RuleConfigError as exc:
                for key, problem in exc.problems.items():
                    self.add_error("config", f"{key}: {problem}")
        return cleaned


@admin.register(RuleConfig)
class RuleConfigAdmin(_RuleConfigAdminBase):
    form = RuleConfigForm
    list_display = ("name", "enabled", "summary", "updated_at", "updated_by")
    readonly_fields = ("name", "updated_at", "updated_by")
    fields = ("name", "enabled", "config", "updated_at", "updated_by")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="configuration")
    def summary(self, obj: RuleConfig) -> str:
        return json.dumps(obj.config, sort_keys=True)[:200]

    def save_model(self, request: HttpRequest, obj: RuleConfig, form: Any, change: bool) -> None:
        saved = rule_config_update(
            principal=staff_principal(request),
            name=obj.name,
            enabled=bool(form.cleaned_data["enabled"]),
            config=form.cleaned_data["config"],
            user=request.user if request.user.is_authenticated else None,
        )
        vars(obj).update(vars(saved))


class FiredRuleFilter(admin.SimpleListFilter):
    """Assessments in which a rule answered review or block."""

    title = "rule that fired"
    parameter_name = "rule"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in RULES]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        name = self.value()
        if name not in RULES:
            return queryset
        return queryset.filter(
            Q(results__contains=[{"rule": name, "decision": Decision.REVIEW.value}])
            | Q(results__contains=[{"rule": name, "decision": Decision.BLOCK.value}])
        )


@admin.register(Assessment)
class AssessmentAdmin(_AssessmentAdminBase):
    list_display = ("created_at", "stage", "decision", "reasons_text", "gateway", "invoice_id", "customer_id")
    list_filter = ("stage", "decision", FiredRuleFilter, "gateway")
    date_hierarchy = "created_at"
    search_fields = ("=id", "=invoice__id", "=customer__id", "=transaction_id", "=source_ip")
    fields = (
        "id",
        "created_at",
        "stage",
        "decision",
        "reasons_text",
        "results_table",
        "invoice",
        "customer",
        "gateway",
        "transaction_id",
        "source_ip",
    )
    readonly_fields = fields
    list_select_related = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="reasons")
    def reasons_text(self, obj: Assessment) -> str:
        return "; ".join(obj.reasons) or "-"

    @admin.display(description="rules")
    def results_table(self, obj: Assessment) -> str:
        return format_html(
            "<pre>{}</pre>", json.dumps(obj.results, indent=2, sort_keys=True, ensure_ascii=False, default=str)
        )


@admin.register(CustomerRiskFlag)
class CustomerRiskFlagAdmin(_RiskFlagAdminBase):
    list_display = ("created_at", "customer_id", "reason", "cleared_at")
    list_filter = (("cleared_at", admin.EmptyFieldListFilter),)
    fields = ("customer", "reason", "source_event_id", "created_at", "cleared_at", "cleared_by")
    readonly_fields = fields
    actions = ("clear",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Clear: the customer's payments no longer go to review for it", permissions=["change"])
    def clear(self, request: HttpRequest, queryset: QuerySet[CustomerRiskFlag]) -> None:
        user = request.user if request.user.is_authenticated else None
        cleared = sum(
            customer_risk_clear(principal=staff_principal(request), flag_id=pk, user=user)
            for pk in queryset.values_list("pk", flat=True)
        )
        self.message_user(request, f"{cleared} risk flag(s) cleared.", level=messages.SUCCESS)
