"""Request and response shapes of the customer and product endpoints, plus the strict
base every O2S request serializer uses.

Strictness (docs/o2s-integration.md): a field the operation does not accept is refused
with ``unknown_field`` (never silently dropped), and scalars are never coerced: ``"5"``
is not a quantity, ``5`` is not a name, ``true`` is not ``1``. Serializers check shape
only; the services own the domain rules (and re-check what they depend on).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.http import HttpRequest
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError

from billing.models import Customer, Product, TaxTreatment
from invoices import checksum
from invoices.models import Invoice, InvoiceLine, InvoiceStatus, TaxCode
from invoices.pay_links import pay_link_url
from invoices.pricing import MAX_LINES, MAX_QUANTITY
from invoices.services import InvoicePreview
from paymenter.api_errors import flatten_error_detail
from paymenter.card_numbers import card_numbers_refuse
from paymenter.countries import INVALID_MESSAGE as INVALID_COUNTRY
from paymenter.countries import country_code_normalise
from paymenter.errors import PaymenterError
from paymenter.money import MAX_MINOR

UNKNOWN_FIELD = "unknown_field"
_UNKNOWN_MESSAGE = "unknown field"


class UnknownFieldError(PaymenterError):
    """The body carries a field the operation does not accept (400 ``unknown_field``).

    ``fields`` lists every problem found, the unknown fields among them."""

    status_code = 400

    def __init__(self, fields: Mapping[str, list[str]]) -> None:
        names = ", ".join(
            name for name, problems in fields.items() if any(p.startswith(_UNKNOWN_MESSAGE) for p in problems)
        )
        super().__init__(code=UNKNOWN_FIELD, message=f"Unknown field(s): {names}.", fields=fields)


# --- strict building blocks ----------------------------------------------------------------


class StrictCharField(serializers.CharField):
    """Text only: DRF's ``CharField`` would turn ``5`` into ``"5"``."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class StrictEmailField(serializers.EmailField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer only: no strings, floats or booleans."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return int(super().to_internal_value(data))


class StrictUUIDField(serializers.UUIDField):
    """A UUID string only (DRF would accept an integer as a UUID)."""

    def to_internal_value(self, data: Any) -> uuid.UUID:
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class StrictDateField(serializers.DateField):
    """An ISO 8601 date string only."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid", format="YYYY-MM-DD")
        return super().to_internal_value(data)


class StrictSerializer(serializers.Serializer[Any]):
    """Refuses fields it does not declare (or declares read-only) with ``unknown_field``.

    The outermost one (a request body or the query parameters) first refuses a card number
    in any string it was sent, unknown fields included: 400 ``card_number_not_allowed``
    naming each by its dotted path (``lines.0.description``), before any other check, so
    the refusal is the same whatever else is wrong (docs/security.md)."""

    #: fields that exist on the resource but may not be written, with the reason
    fixed_fields: Mapping[str, str] = {}

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        """The declared fields, copied for this instance more cheaply than DRF does.

        DRF deep-copies every declared field for every serializer instance, re-running each
        field's ``__init__``: validating an invoice creation's body took 296 us with it and
        177 us without (docs/performance.md). A declared field is never bound and holds nothing a request
        changes; binding sets its name and parent on the copy, so a shallow copy is as
        good. Nested serializers keep DRF's deep copy: validating a list writes state
        on its child (``run_child_validation``)."""
        return {
            name: copy.deepcopy(field) if isinstance(field, serializers.BaseSerializer) else copy.copy(field)
            for name, field in self._declared_fields.items()
        }

    def to_internal_value(self, data: Any) -> Any:
        if self.root is self and isinstance(data, Mapping):
            card_numbers_refuse(data)
        if isinstance(data, Mapping):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(str(name) for name in data if name not in writable)
            if unknown:
                raise ValidationError(
                    {name: [ErrorDetail(self._unknown_message(name), code=UNKNOWN_FIELD)] for name in unknown}
                )
        return super().to_internal_value(data)

    def _unknown_message(self, name: str) -> str:
        reason = self.fixed_fields.get(name)
        return f"{_UNKNOWN_MESSAGE} ({reason})" if reason else _UNKNOWN_MESSAGE


def _codes(detail: Any) -> set[str]:
    if isinstance(detail, Mapping):
        return set().union(*(_codes(value) for value in detail.values())) if detail else set()
    if isinstance(detail, list | tuple):
        return set().union(*(_codes(value) for value in detail)) if detail else set()
    return {str(getattr(detail, "code", ""))}


def validated(serializer_class: type[serializers.Serializer[Any]], data: Any) -> dict[str, Any]:
    """Validate ``data``; an unknown field anywhere -> 400 ``unknown_field`` (with every
    problem found), any other shape problem -> 400 ``validation_error``."""
    serializer = serializer_class(data=data)
    if serializer.is_valid():
        return dict(serializer.validated_data)
    errors = serializer.errors
    fields = flatten_error_detail(errors)
    if UNKNOWN_FIELD in _codes(errors):
        raise UnknownFieldError(fields)
    raise ValidationError(fields)


# --- errors (documentation of the one error shape) ----------------------------------------


class ErrorBodySerializer(serializers.Serializer[Any]):
    code = serializers.CharField(help_text="Stable, machine-readable; see docs/o2s-integration.md")
    message = serializers.CharField(help_text="For humans; may change")
    fields = serializers.DictField(  # type: ignore[assignment] # a declared field, not Serializer.fields
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Input field (dotted path, e.g. lines.0.quantity) -> problems; {} when none",
    )


class ErrorSerializer(serializers.Serializer[Any]):
    error = ErrorBodySerializer()


# --- customers -----------------------------------------------------------------------------

_COUNTRY = r"^[A-Za-z]{2}$"


class CountryCodeField(serializers.RegexField):
    """An ISO 3166-1 alpha-2 code from the maintained list (``paymenter.countries``): ``ZZ``
    has the shape but is no country. Any case in, upper case out. Text only."""

    default_error_messages = {"unknown_country": INVALID_COUNTRY}

    def __init__(self, regex: str = _COUNTRY, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 2)
        super().__init__(regex, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        code = country_code_normalise(super().to_internal_value(data))
        if code is None:
            self.fail("unknown_country")
        return code


class PostalAddressSerializer(StrictSerializer):
    line1 = StrictCharField(max_length=500, required=False, allow_blank=True)
    line2 = StrictCharField(max_length=500, required=False, allow_blank=True)
    city = StrictCharField(max_length=500, required=False, allow_blank=True)
    region = StrictCharField(max_length=500, required=False, allow_blank=True)
    postcode = StrictCharField(max_length=500, required=False, allow_blank=True)
    country = CountryCodeField(
        r"^([A-Za-z]{2})?$", required=False, allow_blank=True, help_text="ISO 3166-1 alpha-2; blank if not given"
    )


class CustomerContactSerializer(StrictSerializer):
    name = StrictCharField(max_length=500)
    email = StrictEmailField(max_length=500)
    phone = StrictCharField(max_length=500, required=False, allow_null=True, allow_blank=True)
    postal_address = PostalAddressSerializer(required=False, allow_null=True)
    tax_id = StrictCharField(
        max_length=500, required=False, allow_null=True, allow_blank=True, help_text="ABN or foreign tax id"
    )


class CustomerCreateRequestSerializer(CustomerContactSerializer):
    external_id = StrictCharField(max_length=64, help_text="O2S's id of the customer; unique, fixed once created")
    billing_country = CountryCodeField(help_text="ISO 3166-1 alpha-2; decides GST (AU: 10% GST, else GST-free export)")


class CustomerUpdateRequestSerializer(StrictSerializer):
    """Contact details and billing country; every field optional. ``external_id`` is fixed."""

    fixed_fields = {"external_id": "cannot be changed", "id": "cannot be changed"}

    name = StrictCharField(max_length=500, required=False)
    email = StrictEmailField(max_length=500, required=False)
    phone = StrictCharField(max_length=500, required=False, allow_null=True, allow_blank=True)
    postal_address = PostalAddressSerializer(required=False, allow_null=True)
    tax_id = StrictCharField(max_length=500, required=False, allow_null=True, allow_blank=True)
    billing_country = CountryCodeField(required=False)


class CustomerLookupQuerySerializer(StrictSerializer):
    external_id = StrictCharField(max_length=64, help_text="O2S's id of the customer")


class CustomerSerializer(serializers.Serializer[Customer]):
    """A customer as O2S sees it: personal data decrypted (O2S owns it)."""

    id = serializers.UUIDField()
    external_id = serializers.CharField()
    billing_country = serializers.CharField()
    name = serializers.CharField()
    email = serializers.CharField()
    phone = serializers.CharField(allow_null=True)
    postal_address = PostalAddressSerializer(allow_null=True)
    tax_id = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


# --- products ------------------------------------------------------------------------------


class ProductPriceSerializer(serializers.Serializer[Any]):
    currency = serializers.CharField(help_text="ISO 4217")
    unit_amount_minor = serializers.IntegerField(help_text="GST-exclusive unit price in minor units")


class ProductSerializer(serializers.Serializer[Product]):
    code = serializers.CharField()
    description = serializers.CharField()
    tax_treatment = serializers.ChoiceField(
        choices=TaxTreatment.choices,
        help_text="standard: GST per the customer's country; gst_free: never GST",
    )
    prices = ProductPriceSerializer(many=True, source="prices.all")


class ProductListSerializer(serializers.Serializer[Any]):
    results = ProductSerializer(many=True)


# --- invoices ----------------------------------------------------------------------


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
        return _line_document(instance)


# The formatting of the declared fields, applied directly (see _invoice_document).
_DATE = serializers.DateField()
_DATETIME = serializers.DateTimeField()
_RATE = serializers.DecimalField(max_digits=6, decimal_places=4)


def _date(value: Any) -> Any:
    return None if value is None else _DATE.to_representation(value)


def _line_document(line: InvoiceLine) -> dict[str, Any]:
    """``InvoiceLineSerializer``'s fields, in their order and format (a test compares it
    with DRF's field-by-field rendering)."""
    return {
        "position": int(line.position),
        "description": str(line.description),
        "product_code": line.product_code or None,
        "quantity": int(line.quantity),
        "unit_amount_minor": int(line.unit_amount_minor),
        "tax_code": str(line.tax_code),
        "tax_rate": _RATE.to_representation(line.tax_rate),
        "subtotal_minor": int(line.subtotal_minor),
        "tax_minor": int(line.tax_minor),
        "total_minor": int(line.total_minor),
        "period_start": _date(line.period_start),
        "period_end": _date(line.period_end),
    }


class InvoiceSerializer(serializers.Serializer[Invoice]):
    """An invoice. ``lines`` and the checksum state come from the prefetched lines.

    The declared fields define the schema; :meth:`to_representation` renders them
    directly instead of field by field (a page of 50 invoices spent most of its time in
    DRF's generic machinery), with the same names, order and formats: a test compares the
    two renderings (docs/performance.md)."""

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
        help_text=(
            "The stored integrity checksum matches the invoice as stored now. False on an issued invoice: "
            "it was altered outside Paymenter; it has no pay_url, and paying, voiding or writing it off "
            "is refused (409 invoice_checksum_mismatch). Always false for a draft (signed when issued)"
        )
    )
    pay_url = serializers.SerializerMethodField(
        help_text="Where the customer pays; null unless the invoice is open and checksum_valid is true"
    )
    created_at = serializers.DateTimeField()

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_checksum_valid(self, invoice: Invoice) -> bool:
        # asked twice per invoice (here and by pay_url): the HMAC is computed once
        known: dict[Any, bool] = self.__dict__.setdefault("_checksum_valid", {})
        if invoice.pk not in known:
            lines = list(invoice.lines.all())  # prefetched: no query per invoice
            known[invoice.pk] = invoice.status != InvoiceStatus.DRAFT and checksum.is_valid(invoice, lines)
        return known[invoice.pk]

    @extend_schema_field({"type": "string", "format": "uri", "nullable": True})
    def get_pay_url(self, invoice: Invoice) -> str | None:
        if invoice.status != InvoiceStatus.OPEN or not self.get_checksum_valid(invoice):
            return None  # never a link to pay an amount that fails its checksum
        request: HttpRequest | None = self.context.get("request")
        return pay_link_url(invoice=invoice, request=request)

    def to_representation(self, instance: Invoice) -> dict[str, Any]:
        invoice = instance
        return {
            "id": str(invoice.id),
            "number": invoice.number,
            "customer": str(invoice.customer_id),
            "customer_external_id": str(invoice.customer.external_id),
            "status": str(invoice.status),
            "currency": str(invoice.currency),
            "issue_date": _date(invoice.issue_date),
            "due_date": _date(invoice.due_date),
            "is_tax_invoice": bool(invoice.is_tax_invoice),
            "lines": [_line_document(line) for line in invoice.lines.all()],
            "subtotal_minor": int(invoice.subtotal_minor),
            "tax_minor": int(invoice.tax_minor),
            "total_minor": int(invoice.total_minor),
            "amount_paid_minor": int(invoice.amount_paid_minor),
            "amount_due_minor": int(invoice.amount_due_minor),
            "checksum_valid": self.get_checksum_valid(invoice),
            "pay_url": self.get_pay_url(invoice),
            "created_at": _DATETIME.to_representation(invoice.created_at),
        }


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
