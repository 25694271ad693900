"""Paying invoices in tests: through the ledger (``payment_receive``), as a bank transfer
matched to the invoice would be, so the payment row, the invoice's amounts, the audit
trail and the outbox are the real ones."""

from __future__ import annotations

import itertools

from django.conf import settings
from django.test import override_settings

from gateways.base import GatewayCode, PaymentMethod
from gateways.models import Payment, PaymentAttempt
from gateways.services import payment_attempt_start
from gateways.services.ledger import payment_receive
from invoices.models import Invoice
from paymenter import rls
from paymenter.money import Money
from paymenter.principals import Principal, SystemPrincipal

PAYMENT_PRINCIPAL = SystemPrincipal(label="test:factory")
_transactions = itertools.count(1)


def pay_invoice(
    invoice: Invoice,
    amount: Money | int | None = None,
    transaction_id: str | None = None,
    *,
    principal: Principal = PAYMENT_PRINCIPAL,
    gateway: GatewayCode = GatewayCode.BANK_TRANSFER,
    method: PaymentMethod = PaymentMethod.BANK_TRANSFER,
    recorded_by: str = "test:factory",
) -> Payment:
    """Record money received for ``invoice`` through the ledger; returns its payment row.

    ``amount``: by default what is due now (read from the database, not from ``invoice``,
    which may be stale), or the total when nothing is due (a draft, void or paid invoice);
    an ``int`` is minor units of the invoice's currency.
    ``transaction_id``: a new unique one by default; the same one twice records nothing new
    (the existing payment is returned). The payment may be ``held`` (overpayment, another
    currency, an invoice no longer payable): the caller asserts what it expects.
    """
    if amount is None:
        with rls.acting_as(principal):
            stored = Invoice.objects.get(id=invoice.id)
        amount = Money(stored.amount_due_minor or stored.total_minor, stored.currency)
    elif isinstance(amount, int):
        amount = Money(amount, invoice.currency)
    settlement = payment_receive(
        principal=principal,
        invoice_id=invoice.id,
        amount=amount,
        gateway=gateway,
        transaction_id=transaction_id or f"test-transfer-{next(_transactions)}-{invoice.id.hex[:12]}",
        method=method,
        recorded_by=recorded_by,
    )
    if settlement.payment is None:  # payment_receive always records or returns one
        raise AssertionError(f"payment_receive returned no payment for invoice {invoice.id}")
    return settlement.payment


def start_card_payment(invoice: Invoice, *, principal: Principal = PAYMENT_PRINCIPAL) -> PaymentAttempt:
    """Start paying ``invoice`` by card as the hosted page does (Stripe enabled for the call;
    a refusal - a tampered invoice, nothing due - happens before any gateway is contacted)."""
    with override_settings(STRIPE_SECRET_KEY=settings.STRIPE_SECRET_KEY or "sk_test_unused"):
        return payment_attempt_start(
            principal=principal,
            invoice=invoice,
            gateway_code="stripe",
            return_urls=lambda attempt_id: (
                f"https://pay.example/{attempt_id}/ok",
                f"https://pay.example/{attempt_id}/no",
            ),
        )
