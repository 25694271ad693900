"""Staff admin for invoices and tax rates (thin: the one action calls a service).

* Invoices are read-only for everyone: they come from the O2S API, their amounts are
  computed by ``invoices.services`` and issued invoices are immutable. Nobody adds or
  deletes one here. The admin group (``invoices.change_invoice``) may void through
  ``invoice_void``; payment actions arrive with the gateways.
* The checksum column recomputes ``checksum.is_valid`` per row (lines prefetched) so a
  tampered invoice shows a red cross. The change page of such an invoice carries an error
  banner, and opening it (or filtering the list by checksum) records the mismatch through
  ``invoice_checksum_mismatch_record`` (the first detection audits and alerts). The
  "tampering recorded" filter lists every invoice with a recorded mismatch (a SQL filter on
  ``InvoiceChecksumMismatch``, cheap on any list).
* Tax rates are effective-dated rows: the admin group adds new ones; a row is never
  edited or deleted once created (old invoices were priced with it).
* Credit notes (issued by refunds) are read-only for everyone, with their lines and a
  checksum column; the buyer's details are not shown here (they are the invoice's, masked
  there for support).
* ``InvoiceNumberSequence`` is deliberately not registered: editing it breaks gapless
  numbering.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest

from billing.admin import can_see_pii
from billing.selectors import mask_pii
from invoices import checksum, credit_notes
from invoices.models import CreditNote, CreditNoteLine, Invoice, InvoiceLine, InvoiceStatus, TaxRate
from invoices.services import (
    invoice_checksum_mismatch_record,
    invoice_checksum_verify,
    invoice_mark_uncollectible,
    invoice_void,
    tax_rate_create,
)
from paymenter.errors import PaymenterError
from paymenter.money import Money
from paymenter.principals import StaffPrincipal, staff_principal
from paymenter.readonly_admin import ReadOnlyInlineMixin

if TYPE_CHECKING:
    _InvoiceAdminBase = admin.ModelAdmin[Invoice]
    _InvoiceLineInlineBase = admin.TabularInline[InvoiceLine, Invoice]
    _TaxRateAdminBase = admin.ModelAdmin[TaxRate]
    _CreditNoteAdminBase = admin.ModelAdmin[CreditNote]
    _CreditNoteLineInlineBase = admin.TabularInline[CreditNoteLine, CreditNote]
else:  # ModelAdmin is generic only in the stubs
    _InvoiceAdminBase = admin.ModelAdmin
    _InvoiceLineInlineBase = admin.TabularInline
    _TaxRateAdminBase = admin.ModelAdmin
    _CreditNoteAdminBase = admin.ModelAdmin
    _CreditNoteLineInlineBase = admin.TabularInline

VOID_PERMISSION = "invoices.change_invoice"
ADMIN_VOID_REASON = "voided in the staff admin"
ADMIN_UNCOLLECTIBLE_REASON = "written off by staff in the admin"
TAMPERED_BANNER = (
    "INTEGRITY CHECK FAILED: this invoice no longer matches its checksum. Its amounts or lines were "
    "changed outside Paymenter, so nothing shown here can be trusted. Payment, void and write-off are "
    "refused and no payment link is issued; staff have been alerted. Do not send it to the customer."
)

LINE_FIELDS = (
    "position",
    "description",
    "quantity",
    "unit_amount_minor",
    "tax_code",
    "tax_rate",
    "subtotal_minor",
    "tax_minor",
    "total_minor",
    "period_start",
    "period_end",
)
INVOICE_FIELDS = (
    "id",
    "number",
    "customer",
    "status",
    "currency",
    "issue_date",
    "due_date",
    "is_tax_invoice",
    "subtotal_minor",
    "tax_minor",
    "total_minor",
    "amount_paid_minor",
    "amount_refunded_minor",
    "amount_due",
    "checksum_ok",
    "checksum",
    "checksum_key_id",
    "seller_details",
    "buyer_details",
    "buyer_country",
    "void_reason",
    "created_at",
    "issued_at",
    "paid_at",
    "voided_at",
)


def _format(minor: int, currency: str) -> str:
    return Money(minor, currency).format()


class InvoiceLineInline(ReadOnlyInlineMixin, _InvoiceLineInlineBase):
    model = InvoiceLine
    fields = LINE_FIELDS
    readonly_fields = LINE_FIELDS
    ordering = ("position",)


class ChecksumListFilter(admin.SimpleListFilter):
    """Computed per row (an HMAC cannot be checked in SQL): use on a filtered list."""

    title = "checksum"
    parameter_name = "checksum"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("ok", "✓ intact"), ("failed", "✗ mismatch")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        wanted = self.value()
        if wanted not in ("ok", "failed"):
            return queryset
        issued = queryset.exclude(status=InvoiceStatus.DRAFT).prefetch_related("lines")
        intact: list[Invoice] = []
        failed: list[Invoice] = []
        for invoice in issued:
            (intact if checksum.is_valid(invoice, list(invoice.lines.all())) else failed).append(invoice)
        principal = staff_principal(request)
        for invoice in failed:  # a read that detects it: recorded (the first detection alerts)
            invoice_checksum_mismatch_record(principal=principal, invoice=invoice, attempted="admin_list")
        return queryset.filter(pk__in=[invoice.pk for invoice in (intact if wanted == "ok" else failed)])


class TamperingRecordedListFilter(admin.SimpleListFilter):
    """Invoices with a recorded checksum mismatch (``InvoiceChecksumMismatch``): one SQL
    join, so unlike ``ChecksumListFilter`` it is cheap on the whole list."""

    title = "tampering recorded"
    parameter_name = "tampered"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "✗ tampered (recorded)"), ("no", "none recorded")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.filter(checksum_mismatch__isnull=False)
        if self.value() == "no":
            return queryset.filter(checksum_mismatch__isnull=True)
        return queryset


@admin.register(Invoice)
class InvoiceAdmin(_InvoiceAdminBase):
    list_display = (
        "number",
        "customer_external_id",
        "status",
        "currency",
        "total",
        "amount_due",
        "issue_date",
        "due_date",
        "checksum_ok",
    )
    list_filter = ("status", "currency", "issue_date", TamperingRecordedListFilter, ChecksumListFilter)
    search_fields = ("number",)
    list_select_related = ("customer",)
    ordering = ("-created_at",)
    show_full_result_count = False
    inlines = (InvoiceLineInline,)
    actions = ("void_selected", "mark_uncollectible_selected")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Invoice]:
        lines = Prefetch("lines", queryset=InvoiceLine.objects.order_by("position"))
        return super().get_queryset(request).prefetch_related(lines)

    # --- permissions: read-only for everyone -------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # invoices come from the O2S API

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_void_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(VOID_PERMISSION))

    # --- what is shown ------------------------------------------------------------------

    def render_change_form(  # noqa: PLR0917 - Django's signature, positional as the admin calls it
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> Any:
        """The banner on a tampered invoice, shown on this very page (and the detection recorded)."""
        if isinstance(obj, Invoice) and not invoice_checksum_verify(
            principal=staff_principal(request), invoice=obj, attempted="admin_view", lines=list(obj.lines.all())
        ):
            self.message_user(request, TAMPERED_BANNER, level=messages.ERROR)
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if can_see_pii(request):
            return INVOICE_FIELDS
        return tuple("masked_buyer_details" if name == "buyer_details" else name for name in INVOICE_FIELDS)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return (*INVOICE_FIELDS, "masked_buyer_details")

    @admin.display(description="customer", ordering="customer__external_id")
    def customer_external_id(self, obj: Invoice) -> str:
        return obj.customer.external_id

    @admin.display(description="total", ordering="total_minor")
    def total(self, obj: Invoice) -> str:
        return _format(obj.total_minor, obj.currency)

    @admin.display(description="amount due")
    def amount_due(self, obj: Invoice) -> str:
        return _format(obj.amount_due_minor, obj.currency)

    @admin.display(description="checksum OK", boolean=True)
    def checksum_ok(self, obj: Invoice) -> bool | None:
        """None (unknown) for drafts: they are checksummed when issued."""
        if obj.status == InvoiceStatus.DRAFT:
            return None
        return checksum.is_valid(obj, list(obj.lines.all()))

    @admin.display(description="buyer details")
    def masked_buyer_details(self, obj: Invoice) -> str:
        details = obj.buyer_details or {}
        shown = {key: mask_pii(str(value)) if value else "" for key, value in details.items() if key != "external_id"}
        return ", ".join(f"{key}: {value}" for key, value in sorted(shown.items()))

    # --- actions ------------------------------------------------------------------------

    @admin.action(description="Void selected invoices", permissions=["void"])
    def void_selected(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        self._apply_to_each(
            request,
            queryset,
            lambda principal, pk: invoice_void(principal=principal, invoice_id=pk, reason=ADMIN_VOID_REASON),
            done="Voided",
        )

    @admin.action(description="Mark selected invoices uncollectible", permissions=["void"])
    def mark_uncollectible_selected(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        self._apply_to_each(
            request,
            queryset,
            lambda principal, pk: invoice_mark_uncollectible(
                principal=principal, invoice_id=pk, reason=ADMIN_UNCOLLECTIBLE_REASON
            ),
            done="Marked uncollectible",
        )

    def _apply_to_each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Invoice],
        service: Callable[[StaffPrincipal, Any], object],
        *,
        done: str,
    ) -> None:
        """One service call (one transaction) per invoice; refusals are reported, not raised."""
        principal = staff_principal(request)
        succeeded = 0
        for invoice in queryset.order_by("pk"):
            try:
                service(principal, invoice.pk)
            except PaymenterError as exc:
                self.message_user(request, f"{invoice}: not changed: {exc.message}", level=messages.ERROR)
            else:
                succeeded += 1
        if succeeded:
            self.message_user(request, f"{done}: {succeeded} invoice(s).", level=messages.SUCCESS)


@admin.register(TaxRate)
class TaxRateAdmin(_TaxRateAdminBase):
    """Add a new effective-dated row to change a rate; existing rows stay as they are."""

    list_display = ("code", "country", "rate", "effective_from", "effective_to", "description")
    list_filter = ("code", "country")
    ordering = ("country", "code", "-effective_from")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: TaxRate, form: Any, change: bool) -> None:
        """New rates only, through the audited service (the form validated the row)."""
        created = tax_rate_create(
            principal=staff_principal(request),
            code=obj.code,
            country=obj.country,
            rate=obj.rate,
            effective_from=obj.effective_from,
            effective_to=obj.effective_to,
            description=obj.description,
        )
        obj.pk = created.pk


CREDIT_NOTE_LINE_FIELDS = (
    "position",
    "description",
    "tax_code",
    "tax_rate",
    "subtotal_minor",
    "tax_minor",
    "total_minor",
)


class CreditNoteLineInline(ReadOnlyInlineMixin, _CreditNoteLineInlineBase):
    model = CreditNoteLine
    fields = CREDIT_NOTE_LINE_FIELDS
    readonly_fields = CREDIT_NOTE_LINE_FIELDS
    ordering = ("position",)


@admin.register(CreditNote)
class CreditNoteAdmin(_CreditNoteAdminBase):
    """Credit notes are written by the refunds ledger only and never change."""

    list_display = ("number", "invoice", "issue_date", "total", "gst_reversed", "checksum_ok")
    search_fields = ("=number", "=invoice__number")
    list_select_related = ("invoice",)
    inlines = (CreditNoteLineInline,)
    fields = (
        "number",
        "invoice",
        "issue_date",
        "currency",
        "reason",
        "subtotal_minor",
        "tax_minor",
        "total_minor",
        "checksum_key_id",
        "checksum",
        "created_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[CreditNote]:
        return super().get_queryset(request).prefetch_related("lines")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="total (incl. GST)")
    def total(self, obj: CreditNote) -> str:
        return _format(obj.total_minor, obj.currency)

    @admin.display(description="GST reversed")
    def gst_reversed(self, obj: CreditNote) -> str:
        return _format(obj.tax_minor, obj.currency)

    @admin.display(boolean=True, description="checksum")
    def checksum_ok(self, obj: CreditNote) -> bool:
        return credit_notes.is_valid(obj, list(obj.lines.all()))
