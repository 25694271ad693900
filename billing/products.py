"""The product catalogue O2S invoices from: reads, and the errors of a failed lookup.

Products and their prices are managed by staff in the admin (``billing.admin.ProductAdmin``);
the API only reads them. A price is GST-exclusive, in minor units of one currency.
"""

from __future__ import annotations

from enum import StrEnum

from django.db.models import Prefetch, QuerySet

from audit.actions import AuditAction
from audit.services import audit_record
from billing.models import Product, ProductPrice
from paymenter.errors import PaymenterError
from paymenter.principals import Principal


class ProductErrorCode(StrEnum):
    UNKNOWN_PRODUCT = "unknown_product"
    PRODUCT_NOT_PRICED_IN_CURRENCY = "product_not_priced_in_currency"
    PRODUCT_NOT_FOUND = "product_not_found"


class UnknownProductError(PaymenterError):
    """An invoice line names a product code the catalogue does not have (or retired)."""

    status_code = 422

    def __init__(self, *, code: str, field: str = "product_code") -> None:
        super().__init__(
            code=ProductErrorCode.UNKNOWN_PRODUCT,
            message=f"There is no active product with code {code!r}.",
            fields={field: ["unknown product"]},
        )


class ProductNotPricedError(PaymenterError):
    """The product exists but has no price in the invoice currency."""

    status_code = 422

    def __init__(self, *, code: str, currency: str, field: str = "product_code") -> None:
        super().__init__(
            code=ProductErrorCode.PRODUCT_NOT_PRICED_IN_CURRENCY,
            message=f"Product {code!r} has no price in {currency}.",
            fields={field: [f"no price in {currency}"]},
        )


class ProductNotFoundError(PaymenterError):
    status_code = 404

    def __init__(self) -> None:
        super().__init__(code=ProductErrorCode.PRODUCT_NOT_FOUND, message="No such product.")


def products_active() -> QuerySet[Product]:
    """Active products, ordered by code, with their prices prefetched (two queries)."""
    return Product.objects.filter(active=True).prefetch_related(
        Prefetch("prices", queryset=ProductPrice.objects.order_by("currency"))
    )


def product_get(*, code: str) -> Product:
    try:
        return products_active().get(code=code)
    except Product.DoesNotExist as exc:
        raise ProductNotFoundError() from exc


def product_price_for(*, code: str, currency: str, field: str = "product_code") -> tuple[Product, int]:
    """The active product ``code`` and its unit price (minor units, GST-exclusive) in
    ``currency``. ``field`` names the input field in the errors (``lines.0.product_code``)."""
    product = Product.objects.filter(code=code, active=True).first()
    if product is None:
        raise UnknownProductError(code=code, field=field)
    price = ProductPrice.objects.filter(product=product, currency=currency).values_list("unit_amount_minor", flat=True)
    amount = price.first()
    if amount is None:
        raise ProductNotPricedError(code=code, currency=currency, field=field)
    return product, int(amount)


def product_audit_saved(*, principal: Principal, product: Product, created: bool) -> None:
    """Audit a catalogue change (product and all its prices, as saved), in the caller's
    transaction: prices decide what O2S invoices charge."""
    audit_record(
        action=AuditAction.PRODUCT_SAVED,
        principal=principal,
        object_type="product",
        object_id=str(product.id),
        payload={
            "created": created,
            "code": product.code,
            "description": product.description,
            "tax_treatment": product.tax_treatment,
            "active": product.active,
            "prices_minor": {price.currency: price.unit_amount_minor for price in product.prices.order_by("currency")},
        },
    )
