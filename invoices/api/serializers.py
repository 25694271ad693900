"""Request and response shapes of the O2S invoice endpoints.

Requests carry what O2S may say: customer, currency, product codes, quantities, service
periods (and, for permitted keys, custom lines). Totals, tax and status are computed by the
services and appear only in responses; sending them is refused with ``unknown_field``.
Money is always integer minor units of the invoice's ``currency``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.http import HttpRequest
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.api.serializers import (
    StrictCharField,
    StrictDateField,
    StrictIntegerField,
    StrictSerializer,
    StrictUUIDField,
)
from invoices import checksum
from invoices.models import Invoice, InvoiceLine, InvoiceStatus, TaxCode
from invoices.pay_links import pay_link_url
from invoices.services import MAX_LINES, MAX_QUANTITY, InvoicePreview
from paymenter.money import MAX_MINOR


class InvoiceLineRequestSerializer(StrictSerializer):
    """A catalogue line (``product_code`` + ``quantity``) or, for keys allowed custom lines,
    a custom line (``description`` + ``unit_amount_minor`` + ``quantity``)."""

    product_code = serializers.SlugField(
        max_length=64, required=False, help_text="Catalogue product; its price in the invoice currency applies"
    )
    quantity = StrictIntegerField(min_value=1, max_value=MAX_QUANTITY)
    description = StrictCharField(
        max_length=500, required=False, help_text="Defaults to the product's description; required on custom lines"
    )
    unit_amount_minor = StrictIntegerField(
        min_value=0,
        max_value=MAX_MINOR,
        required=False,
        help_text="Custom lines only (keys with can_invoice_custom_lines): GST-exclusive unit price, minor units",
    )
    period_start = StrictDateField(required=False, help_text="First day of the service period")
    period_end = StrictDateField(required=False, help_text="Last day of the service period")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        has_product = "product_code" in attrs
        has_amount = "unit_amount_minor" in attrs
        if has_product == has_amount:
            raise serializers.ValidationError(
                {"product_code": ["give either product_code, or unit_amount_minor and description"]}
            )
        if has_amount and not attrs.get("description"):
            raise serializers.ValidationError({"description": ["required on a line with unit_amount_minor"]})
        start, end = attrs.get("period_start"), attrs.get("period_end")
        if start and end and end < start:
            raise serializers.ValidationError({"period_end": ["must not be before period_start"]})
        return attrs


class InvoiceCreateRequestSerializer(StrictSerializer):
    customer = StrictUUIDField(required=False, help_text="Our customer id; or give customer_external_id")
    customer_external_id = StrictCharField(max_length=64, required=False, help_text="O2S's id of the customer")
    currency = serializers.RegexField(
        r"^[A-Z]{3}$", max_length=3, help_text="ISO 4217, e.g. AUD; every product line needs a price in it"
    )
    lines = InvoiceLineRequestSerializer(  # type: ignore[call-arg] # ListSerializer takes max_length; stubs lag
        many=True, allow_empty=False, max_length=MAX_LINES
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("customer" in attrs) == ("customer_external_id" in attrs):
            raise serializers.ValidationError({"customer": ["give exactly one of customer, customer_external_id"]})
        return attrs


class InvoiceVoidRequestSerializer(StrictSerializer):
    reason = StrictCharField(max_length=500, required=False, allow_blank=True)


class InvoiceListQuerySerializer(StrictSerializer):
    customer = serializers.UUIDField(required=False, help_text="Only this customer's invoices")
    customer_external_id = serializers.CharField(max_length=64, required=False)
    status = serializers.ChoiceField(choices=InvoiceStatus.choices, required=False)
    cursor = serializers.CharField(required=False, max_length=1000, help_text="From `next` / `previous`")
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=100, help_text="Default 25")


# --- responses -----------------------------------------------------------------------------


class InvoiceLineSerializer(serializers.Serializer[InvoiceLine]):
    position = serializers.IntegerField()
    description = serializers.CharField()
    product_code = serializers.CharField(allow_null=True, help_text="null on a custom line")
    quantity = serializers.IntegerField()
    unit_amount_minor = serializers.IntegerField()
    tax_code = serializers.ChoiceField(choices=TaxCode.choices)
    tax_rate = serializers.DecimalField(max_digits=6, decimal_places=4, help_text='e.g. "0.1000" for 10%')
    subtotal_minor = serializers.IntegerField()
    tax_minor = serializers.IntegerField()
    total_minor = serializers.IntegerField()
    period_start = serializers.DateField(allow_null=True)
    period_end = serializers.DateField(allow_null=True)

    def to_representation(self, instance: Any) -> Any:
        data = super().to_representation(instance)
        data["product_code"] = data["product_code"] or None
        return data


class InvoiceSerializer(serializers.Serializer[Invoice]):
    """An invoice. ``lines`` and the checksum state come from the prefetched lines."""

    id = serializers.UUIDField()
    number = serializers.CharField(allow_null=True)
    customer = serializers.UUIDField(source="customer_id")
    customer_external_id = serializers.CharField(source="customer.external_id")
    status = serializers.ChoiceField(choices=InvoiceStatus.choices)
    currency = serializers.CharField()
    issue_date = serializers.DateField(allow_null=True)
    due_date = serializers.DateField(allow_null=True)
    is_tax_invoice = serializers.BooleanField()
    lines = InvoiceLineSerializer(many=True, source="lines.all", help_text="In position order")
    subtotal_minor = serializers.IntegerField()
    tax_minor = serializers.IntegerField()
    total_minor = serializers.IntegerField()
    amount_paid_minor = serializers.IntegerField()
    amount_due_minor = serializers.IntegerField()
    checksum_valid = serializers.SerializerMethodField(
        help_text="The stored integrity checksum matches the invoice as stored now"
    )
    pay_url = serializers.SerializerMethodField(help_text="Where the customer pays; null unless the invoice is open")
    created_at = serializers.DateTimeField()

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_checksum_valid(self, invoice: Invoice) -> bool:
        lines = list(invoice.lines.all())  # prefetched: no query per invoice
        return invoice.status != InvoiceStatus.DRAFT and checksum.is_valid(invoice, lines)

    @extend_schema_field({"type": "string", "format": "uri", "nullable": True})
    def get_pay_url(self, invoice: Invoice) -> str | None:
        if invoice.status != InvoiceStatus.OPEN:
            return None
        request: HttpRequest | None = self.context.get("request")
        return pay_link_url(invoice=invoice, request=request)


class InvoicePageSerializer(serializers.Serializer[Any]):
    next = serializers.URLField(allow_null=True, help_text="The next page, or null")
    previous = serializers.URLField(allow_null=True, help_text="The previous page, or null")
    results = InvoiceSerializer(many=True)


class InvoicePreviewLineSerializer(serializers.Serializer[Any]):
    position = serializers.IntegerField()
    description = serializers.CharField()
    product_code = serializers.CharField(allow_null=True)
    quantity = serializers.IntegerField()
    unit_amount_minor = serializers.IntegerField()
    tax_code = serializers.ChoiceField(choices=TaxCode.choices)
    tax_rate = serializers.DecimalField(max_digits=6, decimal_places=4)
    subtotal_minor = serializers.IntegerField()
    tax_minor = serializers.IntegerField()
    total_minor = serializers.IntegerField()
    period_start = serializers.DateField(allow_null=True)
    period_end = serializers.DateField(allow_null=True)


class InvoicePreviewSerializer(serializers.Serializer[Any]):
    """What ``POST /invoices/`` would create now; nothing was stored."""

    customer = serializers.UUIDField()
    customer_external_id = serializers.CharField()
    currency = serializers.CharField()
    issue_date = serializers.DateField()
    due_date = serializers.DateField()
    lines = InvoicePreviewLineSerializer(many=True)
    subtotal_minor = serializers.IntegerField()
    tax_minor = serializers.IntegerField()
    total_minor = serializers.IntegerField()
    amount_due_minor = serializers.IntegerField()


def preview_document(preview: InvoicePreview) -> dict[str, Any]:
    priced = preview.priced
    return {
        "customer": preview.customer.id,
        "customer_external_id": preview.customer.external_id,
        "currency": priced.currency,
        "issue_date": preview.issue_date,
        "due_date": preview.due_date,
        "lines": [
            {
                "position": line.position,
                "description": line.source.description.strip(),
                "product_code": line.source.product_code,
                "quantity": line.source.quantity,
                "unit_amount_minor": line.source.unit_amount_minor,
                "tax_code": line.tax_code,
                "tax_rate": Decimal(line.tax_rate),
                "subtotal_minor": line.amounts.subtotal_minor,
                "tax_minor": line.amounts.tax_minor,
                "total_minor": line.amounts.total_minor,
                "period_start": line.source.period_start,
                "period_end": line.source.period_end,
            }
            for line in priced.lines
        ],
        "subtotal_minor": priced.totals.subtotal_minor,
        "tax_minor": priced.totals.tax_minor,
        "total_minor": priced.totals.total_minor,
        "amount_due_minor": priced.totals.total_minor,
    }
