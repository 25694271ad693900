"""Staff admin of bank transfers: record one by hand, import statements, resolve their lines.

Thin: every page validates the form's shape and calls one service of
``gateways.services.bank_transfers``, which checks everything again, writes, and audits
with the acting user. Money is shown, never edited.

Who may do what (staff groups, ``billing/migrations/0003_staff_groups.py`` and
``gateways/migrations/0004_*``):

* "Record bank transfer" - ``invoices.record_payment`` (billing, admin; not support: 403);
* import a statement - ``gateways.add_bankstatementimport`` (billing, admin);
* resolve or ignore a line - ``gateways.change_bankstatementline`` (billing, admin);
* statements and their lines name payers, so support cannot even list them.

It sits beside ``gateways/admin.py`` rather than in ``gateways/bank_transfer/``: it calls
``gateways.services``, which use that package, and the modules of an app import without
cycles (``make layers``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from gateways.bank_transfer.references import reference_print
from gateways.bank_transfer.statements import BANK_STATEMENT_CURRENCY, LAYOUT_CHOICES, MAX_BYTES, StatementLayout
from gateways.models import BANK_LINE_OPEN_STATUSES, BankStatementImport, BankStatementLine
from gateways.services.bank_transfers import (
    bank_statement_import,
    bank_statement_line_ignore,
    bank_statement_line_resolve,
    bank_transfer_record,
)
from paymenter.errors import PaymenterError
from paymenter.money import CURRENCY_EXPONENTS, Money, MoneyError
from paymenter.principals import staff_principal

if TYPE_CHECKING:
    _ImportBase = admin.ModelAdmin[BankStatementImport]
    _LineBase = admin.ModelAdmin[BankStatementLine]
else:  # ModelAdmin is generic only in the stubs
    _ImportBase = admin.ModelAdmin
    _LineBase = admin.ModelAdmin

RECORD_PERMISSION = "invoices.record_payment"
IMPORT_PERMISSION = "gateways.add_bankstatementimport"
RESOLVE_PERMISSION = "gateways.change_bankstatementline"
IGNORE_REASON = "ignored by staff in the admin"


def _user_id(request: HttpRequest) -> int:
    return int(request.user.pk or 0)


class RecordTransferForm(forms.Form):
    payment_reference = forms.CharField(
        max_length=64, help_text="As the payer quoted it, e.g. RF76 INV2 0260 0003 4 (spaces and case do not matter)."
    )
    amount = forms.CharField(max_length=32, help_text="What arrived, e.g. 150.00.")
    currency = forms.ChoiceField(choices=[(code, code) for code in CURRENCY_EXPONENTS], initial=BANK_STATEMENT_CURRENCY)
    received_on = forms.DateField(
        label="Date received", widget=forms.DateInput(attrs={"type": "date"}), help_text="As the bank shows it."
    )
    bank_reference = forms.CharField(
        max_length=255, help_text="The bank's reference (receipt or transaction number) of this transfer."
    )
    confirm_distinct = forms.BooleanField(
        required=False,
        label="This is a different transfer",
        help_text="Tick only when told a similar transfer is already recorded and you checked it is another one.",
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if "amount" in cleaned and "currency" in cleaned:
            try:
                cleaned["amount"] = Money.parse(cleaned["amount"], cleaned["currency"])
            except MoneyError as exc:
                self.add_error("amount", exc.message)
        return cleaned


class StatementUploadForm(forms.Form):
    file = forms.FileField(help_text=f"A CSV export of the account, at most {MAX_BYTES // 1024} KiB.")
    layout = forms.ChoiceField(choices=LAYOUT_CHOICES, initial=StatementLayout.AUTO)

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size is not None and upload.size > MAX_BYTES:
            raise forms.ValidationError(f"At most {MAX_BYTES // 1024} KiB: export a shorter period.")
        return upload


class ResolveLineForm(forms.Form):
    invoice = forms.CharField(
        max_length=64, label="Invoice", help_text="Its number (INV-2026-000034) or its payment reference."
    )


class WaitingFilter(admin.SimpleListFilter):
    title = "needs staff"
    parameter_name = "needs_staff"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Waiting for staff")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.filter(status__in=BANK_LINE_OPEN_STATUSES)
        return queryset


class _ReadOnly:
    """Rows are written by the services only."""

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(BankStatementImport)
class BankStatementImportAdmin(_ReadOnly, _ImportBase):
    """The list of imports; "Add" is the upload form (``bank_statement_import``)."""

    list_display = ("imported_at", "file_name", "layout", "lines_total", "lines_new", "lines_matched", "imported_by")
    list_select_related = ("imported_by",)
    ordering = ("-imported_at",)
    show_full_result_count = False
    fields = (
        "file_name",
        "file_sha256",
        "layout",
        "imported_by",
        "imported_at",
        "lines_total",
        "lines_new",
        "lines_matched",
        "debits_skipped",
        "lines_link",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(IMPORT_PERMISSION))

    @admin.display(description="lines")
    def lines_link(self, obj: BankStatementImport) -> str:
        url = f"{reverse('admin:gateways_bankstatementline_changelist')}?statement__id__exact={obj.pk}"
        return format_html('<a href="{}">the {} new line(s) of this import</a>', url, obj.lines_new)

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Upload a statement. A refused file is reported on the form; nothing is stored."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = StatementUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                report = bank_statement_import(
                    principal=staff_principal(request),
                    file_name=str(upload.name or "statement.csv"),
                    content=upload.read(MAX_BYTES + 1),
                    layout=form.cleaned_data["layout"],
                    user_id=_user_id(request),
                )
            except PaymenterError as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(
                    request,
                    f"Imported as {report.layout}: {report.lines_total} credit line(s), {report.lines_new} new, "
                    f"{report.lines_matched} recorded as payments, {report.lines_for_staff} waiting for staff, "
                    f"{report.lines_already_imported} already imported; {report.debits_skipped} debit(s) skipped.",
                    level=messages.SUCCESS,
                )
                changelist = reverse("admin:gateways_bankstatementline_changelist")
                return HttpResponseRedirect(f"{changelist}?statement__id__exact={report.statement_id}")
        context = {
            **self.admin_site.each_context(request),
            "title": "Import a bank statement",
            "form": form,
            "opts": self.model._meta,
            "max_kib": MAX_BYTES // 1024,
        }
        return TemplateResponse(request, "admin/gateways/bankstatementimport/upload.html", context)


@admin.register(BankStatementLine)
class BankStatementLineAdmin(_ReadOnly, _LineBase):
    """Every bank credit: matched, waiting for staff, resolved, ignored, recorded by hand."""

    list_display = ("booked_on", "amount", "status", "payment_reference_printed", "invoice", "note", "statement")
    list_filter = (WaitingFilter, "status", "statement")
    search_fields = ("=payment_reference", "=invoice__number", "=bank_reference")
    list_select_related = ("invoice", "statement")
    ordering = ("-booked_on", "id")
    show_full_result_count = False
    change_list_template = "admin/gateways/bankstatementline/change_list.html"
    actions = ("resolve_line", "ignore_lines")
    fields = (
        "booked_on",
        "amount",
        "status",
        "note",
        "description",
        "bank_reference",
        "payment_reference",
        "invoice",
        "payment",
        "statement",
        "fingerprint",
        "resolved_by",
        "resolved_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # recording by hand has its own page, which adds the line

    def has_resolve_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(RESOLVE_PERMISSION))

    @admin.display(description="amount", ordering="amount_minor")
    def amount(self, obj: BankStatementLine) -> str:
        return Money(obj.amount_minor, obj.currency).format()

    @admin.display(description="payment reference", ordering="payment_reference")
    def payment_reference_printed(self, obj: BankStatementLine) -> str:
        return reference_print(obj.payment_reference)

    def get_urls(self) -> list[URLPattern]:
        record = self.admin_site.admin_view(lambda request: _record_transfer_view(self, request))
        return [path("record-transfer/", record, name="gateways_bank_transfer_record"), *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        can_record = request.user.has_perm(RECORD_PERMISSION)
        return super().changelist_view(request, {**(extra_context or {}), "can_record": can_record})

    @admin.action(description="Resolve the selected line to an invoice", permissions=["resolve"])
    def resolve_line(self, request: HttpRequest, queryset: QuerySet[BankStatementLine]) -> HttpResponse | None:
        """An intermediate page asks which invoice; its POST comes back here with ``apply``."""
        lines = list(queryset.order_by("pk")[:2])
        if len(lines) != 1:
            self.message_user(request, "Select exactly one line to resolve.", level=messages.ERROR)
            return None
        line = lines[0]
        form = ResolveLineForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            try:
                settlement = bank_statement_line_resolve(
                    principal=staff_principal(request),
                    line_id=line.pk,
                    invoice=form.cleaned_data["invoice"],
                    user_id=_user_id(request),
                )
            except PaymenterError as exc:
                form.add_error("invoice", exc.message)
            else:
                payment = settlement.payment
                held = (
                    f", held for staff: {payment.get_held_reason_display()}" if payment and payment.held_reason else ""
                )
                self.message_user(
                    request,
                    f"Line resolved: {Money(line.amount_minor, line.currency).format()} recorded for "
                    f"{form.cleaned_data['invoice']}{held}.",
                    level=messages.WARNING if held else messages.SUCCESS,
                )
                return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Resolve a bank statement line",
            "line": line,
            "amount": Money(line.amount_minor, line.currency).format(),
            "form": form,
            "opts": self.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/gateways/bankstatementline/resolve.html", context)

    @admin.action(description="Ignore the selected lines (they pay no invoice)", permissions=["resolve"])
    def ignore_lines(self, request: HttpRequest, queryset: QuerySet[BankStatementLine]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        changed = bank_statement_line_ignore(
            principal=staff_principal(request), line_ids=ids, user_id=_user_id(request), reason=IGNORE_REASON
        )
        self.message_user(request, f"{changed} line(s) ignored.", level=messages.SUCCESS)


def _record_transfer_view(model_admin: BankStatementLineAdmin, request: HttpRequest) -> HttpResponse:
    """GET: the form. POST: ``bank_transfer_record``; a refusal is shown on the form, with
    what was typed, and nothing is written."""
    if not request.user.has_perm(RECORD_PERMISSION):
        raise PermissionDenied
    form = RecordTransferForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            settlement = bank_transfer_record(
                principal=staff_principal(request),
                payment_reference=data["payment_reference"],
                amount=data["amount"],
                received_on=data["received_on"],
                bank_reference=data["bank_reference"],
                user_id=_user_id(request),
                confirm_distinct=bool(data["confirm_distinct"]),
            )
        except PaymenterError as exc:
            form.add_error(None, exc.message)
        else:
            payment = settlement.payment
            held = f", held for staff: {payment.get_held_reason_display()}" if payment and payment.held_reason else ""
            model_admin.message_user(
                request,
                f"Recorded {data['amount'].format()} for invoice {payment and payment.invoice}{held}.",
                level=messages.WARNING if held else messages.SUCCESS,
            )
            return HttpResponseRedirect(reverse("admin:gateways_bankstatementline_changelist"))
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Record a bank transfer",
        "form": form,
        "opts": model_admin.model._meta,
    }
    return TemplateResponse(request, "admin/gateways/bankstatementline/record_transfer.html", context)
