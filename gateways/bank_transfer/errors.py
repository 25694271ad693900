"""Refusals of bank transfer recording and statement import (``gateways.services.bank_transfers``).

Each one is raised before anything is written: no payment, no statement row, no audit
record, no outbox message.
"""

from __future__ import annotations

from enum import StrEnum

from gateways.errors import PaymentError


class BankTransferErrorCode(StrEnum):
    REFERENCE_INVALID = "bank_reference_invalid"
    REFERENCE_MISTYPED = "bank_reference_mistyped"
    REFERENCE_UNKNOWN_INVOICE = "bank_reference_unknown_invoice"
    TRANSFER_INVALID = "bank_transfer_invalid"
    TRANSFER_ALREADY_RECORDED = "bank_transfer_already_recorded"
    TRANSFER_POSSIBLE_DUPLICATE = "bank_transfer_possible_duplicate"
    STATEMENT_INVALID = "bank_statement_invalid"
    STATEMENT_TOO_LARGE = "bank_statement_too_large"
    LINE_NOT_FOUND = "bank_statement_line_not_found"
    LINE_NOT_OPEN = "bank_statement_line_not_open"


class BankTransferError(PaymentError):
    pass


class PaymentReferenceInvalidError(BankTransferError):
    """Not a payment reference at all (no ``RF`` and two check digits)."""

    def __init__(self, text: str) -> None:
        super().__init__(
            code=BankTransferErrorCode.REFERENCE_INVALID,
            message=f"{text[:40]!r} is not a payment reference (they look like RF76 INV2 0260 0003 4).",
            fields={"payment_reference": ["not a payment reference"]},
        )


class PaymentReferenceMistypedError(BankTransferError):
    """The check digits fail: the payer (or whoever typed it) made a typo. Which invoice
    was meant is for a person to find out, never a guess."""

    status_code = 422

    def __init__(self, reference: str) -> None:
        super().__init__(
            code=BankTransferErrorCode.REFERENCE_MISTYPED,
            message=(
                f"The payment reference {reference} fails its check digits: it was mistyped. "
                "Find the invoice the payer meant and record the transfer with that invoice's reference."
            ),
            fields={"payment_reference": ["check digits fail: mistyped"]},
        )


class PaymentReferenceUnknownInvoiceError(BankTransferError):
    status_code = 404

    def __init__(self, reference: str, invoice_number: str) -> None:
        super().__init__(
            code=BankTransferErrorCode.REFERENCE_UNKNOWN_INVOICE,
            message=f"The payment reference {reference} names invoice {invoice_number}, which does not exist here.",
            fields={"payment_reference": ["no such invoice"]},
        )


class BankTransferInvalidError(BankTransferError):
    """A field of the transfer is missing or malformed (``field`` names it)."""

    def __init__(self, *, field: str, message: str) -> None:
        super().__init__(code=BankTransferErrorCode.TRANSFER_INVALID, message=message, fields={field: [message]})


class BankTransferAlreadyRecordedError(BankTransferError):
    """The same transfer (date, amount, bank reference) was recorded before."""

    status_code = 409

    def __init__(self, *, invoice_number: str) -> None:
        super().__init__(
            code=BankTransferErrorCode.TRANSFER_ALREADY_RECORDED,
            message=(
                f"This transfer (same date, amount and bank reference) is already recorded, for invoice "
                f"{invoice_number}. Nothing was recorded."
            ),
        )


class BankTransferPossibleDuplicateError(BankTransferError):
    """A transfer of the same amount for the same invoice was recorded within a few days
    (by hand or from a statement): probably this one. Staff confirm it is another."""

    status_code = 409

    def __init__(self, *, invoice_number: str, booked_on: str, recorded_as: str) -> None:
        super().__init__(
            code=BankTransferErrorCode.TRANSFER_POSSIBLE_DUPLICATE,
            message=(
                f"A transfer of the same amount for invoice {invoice_number} was already recorded "
                f"({recorded_as}, {booked_on}). Nothing was recorded. If this is a different transfer, "
                "confirm it and record again."
            ),
            fields={"confirm_distinct": ["confirm this is a different transfer"]},
        )


class BankStatementInvalidError(BankTransferError):
    """The file is not a statement in the layout asked for (or in any, for auto-detect)."""

    def __init__(self, message: str) -> None:
        super().__init__(
            code=BankTransferErrorCode.STATEMENT_INVALID,
            message=f"The statement was not imported: {message}",
            fields={"file": [message]},
        )


class BankStatementTooLargeError(BankTransferError):
    status_code = 413

    def __init__(self, *, limit_bytes: int, lines: int) -> None:
        super().__init__(
            code=BankTransferErrorCode.STATEMENT_TOO_LARGE,
            message=(
                f"The statement was not imported: files of up to {limit_bytes // 1024} KiB and {lines} lines are "
                "accepted. Export a shorter period."
            ),
            fields={"file": ["too large"]},
        )


class BankStatementLineNotFoundError(BankTransferError):
    status_code = 404

    def __init__(self) -> None:
        super().__init__(code=BankTransferErrorCode.LINE_NOT_FOUND, message="No such bank statement line.")


class BankStatementLineNotOpenError(BankTransferError):
    """The line was already matched, resolved or ignored."""

    status_code = 409

    def __init__(self, *, status: str) -> None:
        super().__init__(
            code=BankTransferErrorCode.LINE_NOT_OPEN,
            message=f"This statement line is {status}: there is nothing left to resolve.",
        )
