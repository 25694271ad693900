"""O2S invoicing: from "product code x quantity" to priced invoice lines.

O2S names catalogue products and quantities; every amount comes from the catalogue
(``billing.products``) and the tax rules (``invoices.tax``). A line with an explicit unit
amount (a *custom line*) is accepted only from an API key granted
``can_invoice_custom_lines``, and each invoice carrying one is audited
(``invoice.custom_lines``) in the transaction that creates it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from django.db.models import QuerySet

from audit.actions import AuditAction
from billing.errors import CustomerNotFoundError
from billing.models import Customer, TaxTreatment
from billing.products import product_price_for
from billing.selectors import customer_get, customer_get_by_external_id
from invoices.errors import InvoiceNotFoundError
from invoices.models import Invoice, InvoiceStatus
from invoices.selectors import invoices_for_principal
from invoices.services import (
    InvoiceLineInput,
    InvoicePreview,
    invoice_audit_record,
    invoice_create,
    invoice_preview,
)
from paymenter import rls
from paymenter.errors import PaymenterError
from paymenter.money import normalize_currency
from paymenter.principals import ApiKeyPrincipal


class O2SInvoiceErrorCode(StrEnum):
    UNKNOWN_CUSTOMER = "unknown_customer"
    CUSTOM_LINES_NOT_PERMITTED = "custom_lines_not_permitted"


class UnknownCustomerError(PaymenterError):
    """The invoice names a customer we do not have: the body is well-formed but refers
    to nothing (422), unlike ``GET /customers/{id}/`` of a missing one (404)."""

    status_code = 422

    def __init__(self, *, field: str) -> None:
        super().__init__(
            code=O2SInvoiceErrorCode.UNKNOWN_CUSTOMER,
            message="The invoice names an unknown customer.",
            fields={field: ["unknown customer"]},
        )


class CustomLinesNotPermittedError(PaymenterError):
    """A line with an explicit unit amount from a key without the permission (403)."""

    status_code = 403

    def __init__(self, *, positions: Sequence[int]) -> None:
        super().__init__(
            code=O2SInvoiceErrorCode.CUSTOM_LINES_NOT_PERMITTED,
            message="This API key may not send lines with an explicit unit amount; use product codes.",
            fields={f"lines.{index}.unit_amount_minor": ["not permitted for this API key"] for index in positions},
        )


@dataclass(frozen=True)
class O2SLine:
    """One requested line: a catalogue product, or a custom line (description + amount)."""

    quantity: int
    product_code: str | None = None
    description: str | None = None
    unit_amount_minor: int | None = None
    period_start: dt.date | None = None
    period_end: dt.date | None = None

    @property
    def is_custom(self) -> bool:
        return self.product_code is None


def _customer(
    *, principal: ApiKeyPrincipal, customer_id: uuid.UUID | None, customer_external_id: str | None
) -> Customer:
    try:
        if customer_id is not None:
            return customer_get(principal=principal, customer_id=customer_id)
        if customer_external_id is not None:
            return customer_get_by_external_id(principal=principal, external_id=customer_external_id)
    except CustomerNotFoundError as exc:
        raise UnknownCustomerError(field="customer" if customer_id is not None else "customer_external_id") from exc
    raise UnknownCustomerError(field="customer")


def _line_inputs(
    *, principal: ApiKeyPrincipal, lines: Sequence[O2SLine], currency: str
) -> tuple[list[InvoiceLineInput], list[int]]:
    """Price product lines from the catalogue; returns the inputs and the indexes of
    custom lines. Refuses custom lines unless the key may send them."""
    custom = [index for index, line in enumerate(lines) if line.is_custom]
    if custom and not principal.can_invoice_custom_lines:
        raise CustomLinesNotPermittedError(positions=custom)
    inputs: list[InvoiceLineInput] = []
    for index, line in enumerate(lines):
        if line.product_code is None:
            inputs.append(
                InvoiceLineInput(
                    description=line.description or "",
                    quantity=line.quantity,
                    unit_amount_minor=line.unit_amount_minor if line.unit_amount_minor is not None else -1,
                    period_start=line.period_start,
                    period_end=line.period_end,
                )
            )
            continue
        product, unit_amount = product_price_for(
            code=line.product_code, currency=currency, field=f"lines.{index}.product_code"
        )
        inputs.append(
            InvoiceLineInput(
                description=line.description or product.description,
                quantity=line.quantity,
                unit_amount_minor=unit_amount,
                period_start=line.period_start,
                period_end=line.period_end,
                product_code=product.code,
                tax_treatment=TaxTreatment(product.tax_treatment),
            )
        )
    return inputs, custom


def o2s_invoice_create(
    *,
    principal: ApiKeyPrincipal,
    currency: str,
    lines: Sequence[O2SLine],
    customer_id: uuid.UUID | None = None,
    customer_external_id: str | None = None,
) -> Invoice:
    """Create and issue an invoice for O2S, in one transaction with its audit records."""
    currency = normalize_currency(currency)
    with rls.unit_of_work(principal):
        customer = _customer(principal=principal, customer_id=customer_id, customer_external_id=customer_external_id)
        inputs, custom = _line_inputs(principal=principal, lines=lines, currency=currency)
        invoice = invoice_create(
            principal=principal, customer_id=customer.id, lines=inputs, currency=currency, issue=True
        )
        if custom:
            invoice_audit_record(
                action=AuditAction.INVOICE_CUSTOM_LINES,
                principal=principal,
                invoice=invoice,
                payload={
                    "api_key": principal.name,
                    "lines": [
                        {
                            "position": index + 1,
                            "description": inputs[index].description,
                            "quantity": inputs[index].quantity,
                            "unit_amount_minor": inputs[index].unit_amount_minor,
                        }
                        for index in custom
                    ],
                },
            )
    return invoice


def o2s_invoice_preview(
    *,
    principal: ApiKeyPrincipal,
    currency: str,
    lines: Sequence[O2SLine],
    customer_id: uuid.UUID | None = None,
    customer_external_id: str | None = None,
) -> InvoicePreview:
    """``o2s_invoice_create``'s computation and refusals; nothing stored, nothing audited."""
    currency = normalize_currency(currency)
    with rls.acting_as(principal):
        customer = _customer(principal=principal, customer_id=customer_id, customer_external_id=customer_external_id)
        inputs, _ = _line_inputs(principal=principal, lines=lines, currency=currency)
        return invoice_preview(principal=principal, customer_id=customer.id, lines=inputs, currency=currency)


def o2s_invoices_list(
    *,
    principal: ApiKeyPrincipal,
    customer_id: uuid.UUID | None = None,
    customer_external_id: str | None = None,
    status: InvoiceStatus | None = None,
) -> QuerySet[Invoice]:
    """Invoices visible to the key, optionally of one customer and/or one status, with
    customer and lines loaded up front (a constant number of queries per page)."""
    queryset = invoices_for_principal(principal=principal).prefetch_related("lines")
    if customer_id is not None:
        queryset = queryset.filter(customer_id=customer_id)
    if customer_external_id is not None:
        queryset = queryset.filter(customer__external_id=customer_external_id)
    if status is not None:
        queryset = queryset.filter(status=status)
    return queryset


def o2s_invoice_get(*, principal: ApiKeyPrincipal, invoice_id: uuid.UUID | str) -> Invoice:
    """One invoice with its customer and lines loaded."""
    try:
        return o2s_invoices_list(principal=principal).get(id=invoice_id)
    except (Invoice.DoesNotExist, ValueError) as exc:
        raise InvoiceNotFoundError() from exc
