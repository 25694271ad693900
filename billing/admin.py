"""Staff admin for customers (thin: writes go through ``billing.services``).

Who sees and does what (groups from migration ``0003_staff_groups``):

* admin   - adds and edits customers, through ``customer_create`` / ``customer_update``
            (validation, blind index and audit record are the services'); sees personal data
* billing - read-only, sees personal data (``billing.view_customer_pii``)
* support - read-only, personal data masked with ``mask_pii``

Nobody deletes a customer here: invoices refer to them and the audit trail names them.
Editing personal data requires seeing it, so add/change also require ``view_customer_pii``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse

from billing.models import Customer, CustomerMembership, Product, ProductPrice
from billing.selectors import mask_pii
from billing.services import CONTACT_FIELDS, customer_create, customer_update, product_save
from paymenter.card_numbers import FIELD_MESSAGE as CARD_NUMBER_MESSAGE
from paymenter.card_numbers import card_number_fields
from paymenter.countries import INVALID_MESSAGE as INVALID_COUNTRY
from paymenter.countries import country_code_normalise
from paymenter.errors import PaymenterError
from paymenter.principals import staff_principal
from paymenter.readonly_admin import ReadOnlyInlineMixin

if TYPE_CHECKING:
    _CustomerAdminBase = admin.ModelAdmin[Customer]
    _MembershipInlineBase = admin.TabularInline[CustomerMembership, Customer]
    _CustomerFormBase = forms.ModelForm[Customer]
else:  # the admin/form classes are generic only in the stubs
    _CustomerAdminBase = admin.ModelAdmin
    _MembershipInlineBase = admin.TabularInline
    _CustomerFormBase = forms.ModelForm

PII_PERMISSION = "billing.view_customer_pii"
PII_FIELDS = ("name", "email", "phone", "tax_id", "postal_address")
EDITABLE_FIELDS = ("billing_country", *CONTACT_FIELDS)
FIELDS = ("external_id", "billing_country", *PII_FIELDS, "created_at", "updated_at")


def can_see_pii(request: HttpRequest) -> bool:
    return bool(request.user.has_perm(PII_PERMISSION))


class CustomerAdminForm(_CustomerFormBase):
    """Shape only: the services validate and write. Encrypted fields are plain inputs
    (their initial values are the decrypted attributes)."""

    name = forms.CharField(max_length=500)
    email = forms.EmailField(max_length=500)
    phone = forms.CharField(max_length=500, required=False)
    tax_id = forms.CharField(label="ABN / tax id", max_length=500, required=False)
    postal_address = forms.JSONField(
        required=False, help_text="An object with line1, line2, city, region, postcode, country"
    )

    # set by CustomerAdmin when a service refused the submitted values
    service_error: PaymenterError | None = None

    class Meta:
        model = Customer
        fields = ("external_id", "billing_country", *PII_FIELDS)

    def clean_billing_country(self) -> str:
        code = country_code_normalise(str(self.cleaned_data["billing_country"]).strip())
        if code is None:
            raise forms.ValidationError(INVALID_COUNTRY)
        return code

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        error = self.service_error
        if error is not None:
            for field, problems in error.fields.items():
                name = field.split(".", 1)[0]  # "postal_address.country" belongs to postal_address
                self.add_error(name if name in self.fields else None, problems)
            if not error.fields:
                self.add_error(None, error.message)
        return cleaned


class ServiceRefusedError(Exception):
    """A service refused a submitted form; carries the error to the re-rendered form."""

    def __init__(self, error: PaymenterError) -> None:
        super().__init__(error.message)
        self.error = error


class CustomerMembershipInline(ReadOnlyInlineMixin, _MembershipInlineBase):
    """Who logs in for this customer; granted by ``customer_grant_access`` only."""

    model = CustomerMembership
    fields = ("user", "created_at")
    readonly_fields = ("user", "created_at")

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("user")


@admin.register(Customer)
class CustomerAdmin(_CustomerAdminBase):
    form = CustomerAdminForm
    inlines = (CustomerMembershipInline,)
    list_display = ("external_id", "billing_country", "name", "email", "created_at")
    list_filter = ("billing_country",)
    search_fields = ("=external_id",)  # personal data is encrypted: no search on it
    ordering = ("-created_at",)

    # --- permissions ------------------------------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and can_see_pii(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and can_see_pii(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    # --- what is shown: masked personal data without view_customer_pii -----------------

    def get_list_display(self, request: HttpRequest) -> tuple[str, ...]:
        if can_see_pii(request):
            return ("external_id", "billing_country", "name", "email", "created_at")
        return ("external_id", "billing_country", "masked_name", "masked_email", "created_at")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if can_see_pii(request):
            fields: tuple[str, ...] = FIELDS
        else:
            fields = tuple(f"masked_{name}" if name in PII_FIELDS else name for name in FIELDS)
        if obj is None:
            fields = tuple(name for name in fields if name not in ("created_at", "updated_at"))
        return fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        masked = tuple(f"masked_{name}" for name in PII_FIELDS)
        if obj is None:
            return masked
        # external_id is O2S's key: fixed once created (customer_update refuses it too)
        return ("external_id", "created_at", "updated_at", *masked)

    @admin.display(description="name")
    def masked_name(self, obj: Customer) -> str:
        return mask_pii(obj.name)

    @admin.display(description="email")
    def masked_email(self, obj: Customer) -> str:
        return mask_pii(obj.email)

    @admin.display(description="phone")
    def masked_phone(self, obj: Customer) -> str:
        return mask_pii(obj.phone)

    @admin.display(description="ABN / tax id")
    def masked_tax_id(self, obj: Customer) -> str:
        return mask_pii(obj.tax_id)

    @admin.display(description="postal address")
    def masked_postal_address(self, obj: Customer) -> str:
        address = obj.postal_address or {}
        return ", ".join(mask_pii(str(value)) for value in address.values() if value)

    # --- writes go through the services ------------------------------------------------

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        error = getattr(request, "_customer_service_error", None)
        if error is not None:
            return type(form.__name__, (form,), {"service_error": error})
        return form

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """A refusal by the service rolls the admin's transaction back and re-renders
        the submitted form with the service's errors; nothing was written."""
        view = super().changeform_view
        try:
            return view(request, object_id, form_url, extra_context)
        except ServiceRefusedError as refused:
            self.message_user(request, refused.error.message, level=messages.ERROR)
            request._customer_service_error = refused.error  # type: ignore[attr-defined]
            return view(request, object_id, form_url, extra_context)

    def save_model(self, request: HttpRequest, obj: Customer, form: Any, change: bool) -> None:
        data = form.cleaned_data
        try:
            if change:
                changes = {name: data[name] for name in form.changed_data if name in EDITABLE_FIELDS}
                saved = customer_update(principal=staff_principal(request), customer_id=obj.pk, changes=changes)
            else:
                saved = customer_create(
                    principal=staff_principal(request),
                    external_id=data["external_id"],
                    billing_country=data["billing_country"],
                    name=data["name"],
                    email=data["email"],
                    phone=data.get("phone") or None,
                    postal_address=data.get("postal_address") or None,
                    tax_id=data.get("tax_id") or None,
                )
        except PaymenterError as exc:
            raise ServiceRefusedError(exc) from exc
        # the admin goes on with ``obj`` (log entry, redirect): make it the saved row
        vars(obj).update(vars(saved))


# --- product catalogue ---------------------------------------------------------------------
#
# admin   - adds and changes products and their prices (migration 0006_staff_groups_products)
# billing, support - read-only
# Nobody deletes a product or a price: invoice lines name product codes. A product that is
# no longer sold is deactivated (``active``); a price change applies to invoices created
# after it (issued lines keep their amounts).

if TYPE_CHECKING:
    _ProductAdminBase = admin.ModelAdmin[Product]
    _ProductPriceInlineBase = admin.TabularInline[ProductPrice, Product]
    _ProductFormBase = forms.ModelForm[Product]
else:
    _ProductAdminBase = admin.ModelAdmin
    _ProductPriceInlineBase = admin.TabularInline
    _ProductFormBase = forms.ModelForm


class ProductPriceInline(_ProductPriceInlineBase):
    """GST-exclusive unit prices in minor units, one per currency."""

    model = ProductPrice
    fields = ("currency", "unit_amount_minor")
    extra = 0
    can_delete = False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ProductAdminForm(_ProductFormBase):
    """A card number in the code or description is refused here, with the field named;
    ``product_save`` refuses it too, for every other caller."""

    class Meta:
        model = Product
        fields = ("code", "description", "tax_treatment", "active")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for name in card_number_fields({key: cleaned.get(key) for key in ("code", "description")}):
            self.add_error(name, CARD_NUMBER_MESSAGE)
        return cleaned


@admin.register(Product)
class ProductAdmin(_ProductAdminBase):
    form = ProductAdminForm
    inlines = (ProductPriceInline,)
    list_display = ("code", "description", "tax_treatment", "active", "created_at")
    list_filter = ("tax_treatment", "active")
    search_fields = ("code", "description")
    ordering = ("code",)
    fields = ("code", "description", "tax_treatment", "active", "created_at")
    readonly_fields = ("created_at",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # the code is what O2S sends and what invoice lines store: fixed once created
        return ("code", "created_at") if obj is not None else ("created_at",)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Product, form: Any, change: bool) -> None:
        """Nothing yet: the product is saved with its prices by ``product_save`` in
        :meth:`save_related`, where the price inlines are known."""

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        prices = {
            inline.cleaned_data["currency"]: inline.cleaned_data["unit_amount_minor"]
            for formset in formsets
            for inline in formset.forms
            if inline.cleaned_data and not inline.cleaned_data.get("DELETE")
        }
        product_save(principal=staff_principal(request), product=form.instance, prices=prices)

    def construct_change_message(self, request: HttpRequest, form: Any, formsets: Any, add: bool = False) -> Any:
        # the price inlines were written by product_save, not saved as formsets; the prices
        # as saved are on the audit trail (product.saved)
        return super().construct_change_message(request, form, [], add)
