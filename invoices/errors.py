"""Error codes of the invoices app."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from paymenter.errors import PaymenterError


class InvoiceErrorCode(StrEnum):
    INVALID_INVOICE = "invalid_invoice"
    INVOICE_NOT_FOUND = "invoice_not_found"
    INVALID_STATE = "invoice_invalid_state"
    CHECKSUM_MISMATCH = "invoice_checksum_mismatch"
    PAYMENT_AMOUNT_MISMATCH = "payment_amount_mismatch"
    TAX_RATE_MISSING = "tax_rate_missing"


class InvoiceError(PaymenterError):
    pass


class InvalidInvoiceError(InvoiceError):
    def __init__(self, fields: Mapping[str, list[str]], message: str = "The invoice is invalid.") -> None:
        super().__init__(code=InvoiceErrorCode.INVALID_INVOICE, message=message, fields=fields)


class InvoiceNotFoundError(InvoiceError):
    status_code = 404

    def __init__(self) -> None:
        super().__init__(code=InvoiceErrorCode.INVOICE_NOT_FOUND, message="No such invoice.")


class InvoiceStateError(InvoiceError):
    status_code = 409

    def __init__(self, *, status: str, action: str) -> None:
        super().__init__(
            code=InvoiceErrorCode.INVALID_STATE, message=f"An invoice that is {status} cannot be {action}."
        )


class InvoiceChecksumMismatchError(InvoiceError):
    """What is owed no longer matches its signature: the invoice was altered outside
    the services. The action is refused and the mismatch audited."""

    status_code = 409

    def __init__(self) -> None:
        super().__init__(
            code=InvoiceErrorCode.CHECKSUM_MISMATCH,
            message="The invoice failed its integrity check; staff have been alerted.",
        )


class PaymentAmountMismatchError(InvoiceError):
    status_code = 422

    def __init__(self, *, expected: str, received: str) -> None:
        super().__init__(
            code=InvoiceErrorCode.PAYMENT_AMOUNT_MISMATCH,
            message=f"Payment of {received} does not match the amount due of {expected}.",
        )


class TaxRateMissingError(InvoiceError):
    status_code = 503

    def __init__(self, *, code: str, country: str) -> None:
        super().__init__(
            code=InvoiceErrorCode.TAX_RATE_MISSING,
            message=f"No {code} rate is configured for {country} on that date.",
        )


class PayLinkErrorCode(StrEnum):
    INVALID = "pay_link_invalid"
    EXPIRED = "pay_link_expired"


class PayLinkError(PaymenterError):
    pass


class PayLinkInvalidError(PayLinkError):
    """Tampered with, truncated, or not ours: no detail is given away."""

    status_code = 400

    def __init__(self) -> None:
        super().__init__(code=PayLinkErrorCode.INVALID, message="This payment link is invalid.")


class PayLinkExpiredError(PayLinkError):
    status_code = 410

    def __init__(self) -> None:
        super().__init__(code=PayLinkErrorCode.EXPIRED, message="This payment link has expired.")
