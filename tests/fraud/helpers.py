"""Shared by the fraud rule tests: a settable clock, and the hook contexts of
``gateways.risk`` (the public contract the engine is called with)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from billing.models import Customer
from fraud.engine import FraudAssessor
from gateways.base import CardFacts, GatewayCode, GatewayPayment, GatewayPaymentStatus, PaymentMethod
from gateways.risk import PaymentReportedContext, PaymentStartContext
from invoices.models import Invoice
from paymenter.money import Money

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
GEOIP_TEST_DATABASE = str(Path(__file__).resolve().parent.parent / "fixtures" / "geoip" / "GeoLite2-Country-Test.mmdb")
# What MaxMind's test database says (tests/fixtures/geoip): 81.2.69.142 is GB, 67.43.156.1 is BT
GB_ADDRESS = "81.2.69.142"
BT_ADDRESS = "67.43.156.1"
AUTHENTICATED_CARD = CardFacts(
    brand="visa",
    country="AU",
    cvc_check="pass",
    address_postal_code_check="pass",
    address_line1_check="pass",
    three_d_secure_result="authenticated",
)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)


def assessor_at(clock: Clock) -> FraudAssessor:
    return FraudAssessor(clock=clock)


def start_context(
    invoice: Invoice, *, source_ip: str = "203.0.113.7", customer: Customer | None = None
) -> PaymentStartContext:
    return PaymentStartContext(
        invoice_id=invoice.id,
        customer_id=customer.id if customer is not None else invoice.customer_id,
        gateway=GatewayCode.STRIPE,
        amount=Money(invoice.amount_due_minor, invoice.currency),
        source_ip=source_ip,
    )


def card_report(
    invoice: Invoice, *, card: CardFacts | None = AUTHENTICATED_CARD, txn: str = "pi_test"
) -> PaymentReportedContext:
    return PaymentReportedContext(
        invoice_id=invoice.id,
        customer_id=invoice.customer_id,
        payment=GatewayPayment(
            gateway=GatewayCode.STRIPE,
            transaction_id=txn,
            status=GatewayPaymentStatus.SUCCEEDED,
            amount=Money(invoice.total_minor, invoice.currency),
            method=PaymentMethod.CARD,
            invoice_id=invoice.id,
            card=card,
        ),
    )


def other_report(invoice: Invoice, *, method: PaymentMethod, gateway: GatewayCode) -> PaymentReportedContext:
    return PaymentReportedContext(
        invoice_id=invoice.id,
        customer_id=invoice.customer_id,
        payment=GatewayPayment(
            gateway=gateway,
            transaction_id=f"{gateway}-txn",
            status=GatewayPaymentStatus.SUCCEEDED,
            amount=Money(invoice.total_minor, invoice.currency),
            method=method,
            invoice_id=invoice.id,
        ),
    )
