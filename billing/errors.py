"""Error codes of the billing app (customers and the product catalogue)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from paymenter.errors import PaymenterError


class BillingErrorCode(StrEnum):
    INVALID_CUSTOMER = "invalid_customer"
    DUPLICATE_CUSTOMER = "duplicate_customer"
    DUPLICATE_EMAIL = "duplicate_email"
    CUSTOMER_NOT_FOUND = "customer_not_found"


class BillingError(PaymenterError):
    pass


class InvalidCustomerError(BillingError):
    def __init__(self, fields: Mapping[str, list[str]]) -> None:
        super().__init__(
            code=BillingErrorCode.INVALID_CUSTOMER, message="The customer details are invalid.", fields=fields
        )


class DuplicateCustomerError(BillingError):
    status_code = 409

    def __init__(self, *, field: str) -> None:
        code = BillingErrorCode.DUPLICATE_EMAIL if field == "email" else BillingErrorCode.DUPLICATE_CUSTOMER
        super().__init__(
            code=code,
            message=f"A customer with this {field.replace('_', ' ')} already exists.",
            fields={field: ["already in use"]},
        )


class CustomerNotFoundError(BillingError):
    status_code = 404

    def __init__(self) -> None:
        super().__init__(code=BillingErrorCode.CUSTOMER_NOT_FOUND, message="No such customer.")


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
