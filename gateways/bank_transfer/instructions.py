"""What a payer needs to pay an invoice by bank transfer: our account and the reference.

The account comes from settings (``BANK_TRANSFER_*``); bank transfer is offered exactly
when ``BANK_TRANSFER_ACCOUNT_NUMBER`` is set. The reference is the invoice's ISO 11649
reference (``gateways.bank_transfer.references``), which the statement import matches.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from django.conf import settings

from gateways.bank_transfer.references import InvalidInvoiceNumberError, payment_reference_for, reference_print
from invoices.models import Invoice
from paymenter.money import Money

logger = logging.getLogger(__name__)

_BSB = re.compile(r"^\d{3}-?\d{3}$")


@dataclass(frozen=True)
class BankAccount:
    """The provider's account that transfers are paid into."""

    account_name: str
    bank_name: str
    bsb: str
    """Bank-State-Branch number, shown as ``062-000``."""
    account_number: str


@dataclass(frozen=True)
class BankTransferInstructions:
    """Everything the hosted page and the invoice show under "Pay by bank transfer"."""

    account_name: str
    bank_name: str
    bsb: str
    account_number: str
    reference: str
    """Printed in groups of four (``RF76 INV2 0260 0003 4``): what the payer must quote."""
    amount: Money
    """What is due now."""

    @property
    def reference_compact(self) -> str:
        return self.reference.replace(" ", "")


def bank_transfer_enabled() -> bool:
    return bool(settings.BANK_TRANSFER_ACCOUNT_NUMBER)


def _bsb_display(bsb: str) -> str:
    bsb = bsb.strip()
    if _BSB.match(bsb):
        digits = bsb.replace("-", "")
        return f"{digits[:3]}-{digits[3:]}"
    return bsb


def bank_account() -> BankAccount:
    """The account from settings (read at call time, so tests and deployments can change it)."""
    return BankAccount(
        account_name=str(settings.BANK_TRANSFER_ACCOUNT_NAME),
        bank_name=str(settings.BANK_TRANSFER_BANK_NAME),
        bsb=_bsb_display(str(settings.BANK_TRANSFER_BSB)),
        account_number=str(settings.BANK_TRANSFER_ACCOUNT_NUMBER).strip(),
    )


def instructions_for(*, invoice_number: str, amount: Money) -> BankTransferInstructions:
    """The instructions for paying ``amount`` of the invoice ``invoice_number``; raises
    :class:`~gateways.bank_transfer.references.InvalidInvoiceNumberError` for a number a
    reference cannot carry."""
    account = bank_account()
    return BankTransferInstructions(
        account_name=account.account_name,
        bank_name=account.bank_name,
        bsb=account.bsb,
        account_number=account.account_number,
        reference=reference_print(payment_reference_for(invoice_number)),
        amount=amount,
    )


def bank_transfer_instructions(invoice: Invoice) -> BankTransferInstructions | None:
    """How to pay ``invoice`` by bank transfer, or ``None``: bank transfer is not enabled,
    nothing is due (paid, void, draft, or fully paid), or the invoice's number cannot be a
    payment reference (a misconfigured ``INVOICE_NUMBER_PREFIX``: logged for operators)."""
    if not bank_transfer_enabled() or not invoice.number or invoice.amount_due_minor <= 0:
        return None
    try:
        return instructions_for(invoice_number=invoice.number, amount=Money(invoice.amount_due_minor, invoice.currency))
    except InvalidInvoiceNumberError:
        logger.exception("invoice %s: no bank transfer reference can be made for its number", invoice.id)
        return None
