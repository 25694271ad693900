"""Request and response shapes of the customer and product endpoints, plus the strict
base every O2S request serializer uses.

Strictness (docs/o2s-integration.md): a field the operation does not accept is refused
with ``unknown_field`` (never silently dropped), and scalars are never coerced: ``"5"``
is not a quantity, ``5`` is not a name, ``true`` is not ``1``. Serializers check shape
only; the services own the domain rules (and re-check what they depend on).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError
from rest_framework.settings import api_settings

from billing.models import Customer, Product, TaxTreatment
from paymenter.errors import PaymenterError

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
    """Refuses fields it does not declare (or declares read-only) with ``unknown_field``."""

    #: fields that exist on the resource but may not be written, with the reason
    fixed_fields: Mapping[str, str] = {}

    def to_internal_value(self, data: Any) -> Any:
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


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """``{"lines": {"0": {"quantity": [...]}}}`` -> ``{"lines.0.quantity": [...]}``; a nested
    serializer's or list's own errors (``non_field_errors``) are filed under its name."""
    if isinstance(detail, Mapping):
        fields: dict[str, list[str]] = {}
        for name, value in detail.items():
            if prefix and name == api_settings.NON_FIELD_ERRORS_KEY:
                key = prefix
            else:
                key = f"{prefix}.{name}" if prefix else str(name)
            for field, problems in _flatten(value, key).items():
                fields.setdefault(field, []).extend(problems)
        return fields
    if isinstance(detail, list | tuple):
        fields = {}
        for index, item in enumerate(detail):
            if isinstance(item, Mapping | list | tuple):
                fields.update(_flatten(item, f"{prefix}.{index}" if prefix else str(index)))
            else:
                fields.setdefault(prefix or api_settings.NON_FIELD_ERRORS_KEY, []).append(str(item))
        return fields
    return {prefix or api_settings.NON_FIELD_ERRORS_KEY: [str(detail)]}


def validated(serializer_class: type[serializers.Serializer[Any]], data: Any) -> dict[str, Any]:
    """Validate ``data``; an unknown field anywhere -> 400 ``unknown_field`` (with every
    problem found), any other shape problem -> 400 ``validation_error``."""
    serializer = serializer_class(data=data)
    if serializer.is_valid():
        return dict(serializer.validated_data)
    errors = serializer.errors
    fields = _flatten(errors)
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


class PostalAddressSerializer(StrictSerializer):
    line1 = StrictCharField(max_length=500, required=False, allow_blank=True)
    line2 = StrictCharField(max_length=500, required=False, allow_blank=True)
    city = StrictCharField(max_length=500, required=False, allow_blank=True)
    region = StrictCharField(max_length=500, required=False, allow_blank=True)
    postcode = StrictCharField(max_length=500, required=False, allow_blank=True)
    country = StrictCharField(max_length=500, required=False, allow_blank=True)


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
    billing_country = serializers.RegexField(
        _COUNTRY, max_length=2, help_text="ISO 3166-1 alpha-2; decides GST (AU: 10% GST, else GST-free export)"
    )


class CustomerUpdateRequestSerializer(StrictSerializer):
    """Contact details and billing country; every field optional. ``external_id`` is fixed."""

    fixed_fields = {"external_id": "cannot be changed", "id": "cannot be changed"}

    name = StrictCharField(max_length=500, required=False)
    email = StrictEmailField(max_length=500, required=False)
    phone = StrictCharField(max_length=500, required=False, allow_null=True, allow_blank=True)
    postal_address = PostalAddressSerializer(required=False, allow_null=True)
    tax_id = StrictCharField(max_length=500, required=False, allow_null=True, allow_blank=True)
    billing_country = serializers.RegexField(_COUNTRY, max_length=2, required=False)


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
