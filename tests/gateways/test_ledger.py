"""The payments ledger: every payment is one row, an invoice's amount paid is the sum of its
applied rows, and money that cannot count (more than is due, another currency, an invoice
no longer payable, a card payment for other than was asked, one the fraud rules hold) is
held for staff and changes nothing else. Refusals write nothing at all."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from billing.models import Customer
from gateways.base import CardFacts, GatewayCode, GatewayPayment, GatewayPaymentStatus, PaymentMethod
from gateways.models import AttemptStatus, Payment, PaymentAttempt, WebhookEvent
from gateways.risk import PaymentReportedContext, PaymentStartContext, RiskAssessment, RiskDecision
from gateways.services import Settlement, payment_held_resolve, payment_receive, payment_settle
from gateways.services.ledger import PaymentInvoiceMismatchError
from invoices.errors import InvoiceChecksumMismatchError
from invoices.models import Invoice
from invoices.services import invoice_void
from paymenter import rls
from paymenter.models import OutboxMessage
from paymenter.money import Money
from paymenter.principals import CustomerPrincipal, StaffPrincipal, SystemPrincipal
from tests.factories import UserFactory, make_customer, make_invoice, pay_invoice

pytestmark = pytest.mark.django_db

O2S = "o2s.callback"
RECEIPT = "portal.receipt"
TOTAL = 3190  # the factory invoice: AUD 20.00 + 2 x 4.50 + 10% GST


# --- helpers -------------------------------------------------------------------------------


def _receive(
    principal: SystemPrincipal,
    invoice: Invoice,
    minor: int,
    transaction_id: str,
    *,
    currency: str = "AUD",
) -> Settlement:
    return payment_receive(
        principal=principal,
        invoice_id=invoice.id,
        amount=Money(minor, currency),
        gateway=GatewayCode.BANK_TRANSFER,
        transaction_id=transaction_id,
        method=PaymentMethod.BANK_TRANSFER,
        recorded_by="test:ledger",
    )


def _invoice(invoice: Invoice) -> Invoice:
    return Invoice.objects.get(id=invoice.id)


def _row(invoice: Invoice) -> dict[str, Any]:
    return dict(Invoice.objects.filter(id=invoice.id).values().get())


def _actions(invoice: Invoice) -> list[str]:
    return list(
        AuditEvent.objects.filter(object_id=str(invoice.id)).order_by("sequence").values_list("action", flat=True)
    )


def _outbox(invoice: Invoice) -> list[tuple[str, str]]:
    return [
        (message.topic, message.payload["type"])
        for message in OutboxMessage.objects.filter(ordering_key=f"invoice:{invoice.id}").order_by("id")
    ]


def _counts() -> dict[str, int]:
    """Every table a payment could write to, counted."""
    return {
        "payments": Payment.objects.count(),
        "attempts": PaymentAttempt.objects.count(),
        "audit": AuditEvent.objects.count(),
        "outbox": OutboxMessage.objects.count(),
        "invoices": Invoice.objects.count(),
    }


def _applied_sum(invoice: Invoice) -> int:
    return sum(Payment.objects.filter(invoice_id=invoice.id, status="applied").values_list("amount_minor", flat=True))


@pytest.fixture
def invoice(system_principal: SystemPrincipal) -> Invoice:
    created = make_invoice(make_customer())
    assert (created.total_minor, created.currency, created.status) == (TOTAL, "AUD", "open")
    return created


# --- partial payments ----------------------------------------------------------------------


def test_two_partial_payments_then_the_rest_pay_the_invoice_exactly_at_zero(
    system_principal: SystemPrincipal, invoice: Invoice
) -> None:
    first = _receive(system_principal, invoice, 1000, "transfer-1")
    after_first = _invoice(invoice)
    second = _receive(system_principal, invoice, 190, "transfer-2")
    after_second = _invoice(invoice)
    rest = _receive(system_principal, invoice, 2000, "transfer-3")
    after_rest = _invoice(invoice)

    assert [s.created for s in (first, second, rest)] == [True, True, True]
    assert [(s.payment.status, s.payment.held_reason) for s in (first, second, rest) if s.payment] == [
        ("applied", ""),
        ("applied", ""),
        ("applied", ""),
    ]
    assert (after_first.status, after_first.amount_paid_minor, after_first.amount_due_minor) == ("open", 1000, 2190)
    assert (after_second.status, after_second.amount_paid_minor, after_second.amount_due_minor) == ("open", 1190, 2000)
    assert (after_rest.status, after_rest.amount_paid_minor, after_rest.amount_due_minor) == ("paid", TOTAL, 0)
    assert (after_first.paid_at, after_second.paid_at) == (None, None)
    assert after_rest.paid_at is not None
    assert _actions(invoice) == [
        "invoice.created",
        "invoice.issued",
        "payment.recorded",
        "payment.recorded",
        "invoice.paid",
    ]
    assert _outbox(invoice) == [
        (O2S, "payment.recorded"),
        (RECEIPT, "payment.recorded"),
        (O2S, "payment.recorded"),
        (RECEIPT, "payment.recorded"),
        (O2S, "invoice.paid"),
        (RECEIPT, "invoice.paid"),
    ]


def test_each_payment_event_carries_the_payment_and_the_invoice_as_it_left_it(
    system_principal: SystemPrincipal, invoice: Invoice
) -> None:
    partial = _receive(system_principal, invoice, 1000, "transfer-a").payment
    rest = _receive(system_principal, invoice, 2190, "transfer-b").payment
    assert partial is not None
    assert rest is not None

    messages = list(OutboxMessage.objects.filter(ordering_key=f"invoice:{invoice.id}", topic=O2S).order_by("id"))

    data = [message.payload["data"] for message in messages]
    assert [(d["status"], d["amount_paid_minor"], d["amount_due_minor"]) for d in data] == [
        ("open", 1000, 2190),
        ("paid", TOTAL, 0),
    ]
    assert [d["payment"] for d in data] == [
        {
            "payment_id": str(payment.id),
            "gateway": "bank_transfer",
            "method": "bank_transfer",
            "transaction_id": transaction_id,
            "amount_minor": amount,
            "currency": "AUD",
            "status": "applied",
            "held_reason": "",
        }
        for payment, transaction_id, amount in ((partial, "transfer-a", 1000), (rest, "transfer-b", 2190))
    ]
    recorded = AuditEvent.objects.get(object_id=str(invoice.id), action="payment.recorded")
    assert recorded.payload == {"number": invoice.number, **data[0]["payment"]}
    assert recorded.actor_id == "test"


# --- held payments -------------------------------------------------------------------------


def _void(principal: SystemPrincipal, invoice: Invoice) -> None:
    invoice_void(principal=principal, invoice_id=invoice.id, reason="ordered by mistake")


def _paid(principal: SystemPrincipal, invoice: Invoice) -> None:
    pay_invoice(invoice, principal=principal)


@dataclass(frozen=True)
class HeldCase:
    name: str
    before: Callable[[SystemPrincipal, Invoice], None] | None
    """What happened to the invoice first."""
    minor: int
    currency: str
    reason: str


HELD = [
    HeldCase("overpayment", None, TOTAL + 1, "AUD", "overpayment"),
    HeldCase("currency_mismatch", None, TOTAL, "USD", "currency_mismatch"),
    HeldCase("void_invoice", _void, TOTAL, "AUD", "invoice_not_payable"),
    HeldCase("paid_invoice", _paid, TOTAL, "AUD", "invoice_not_payable"),
    HeldCase("paid_invoice_small_amount", _paid, 1, "AUD", "invoice_not_payable"),
]


@pytest.mark.parametrize("case", HELD, ids=[case.name for case in HELD])
def test_money_that_cannot_count_is_held_and_changes_nothing_else(
    system_principal: SystemPrincipal, invoice: Invoice, case: HeldCase
) -> None:
    if case.before is not None:
        case.before(system_principal, invoice)
    row_before = _row(invoice)
    actions_before = _actions(invoice)
    outbox_before = _outbox(invoice)
    paid_events_before = actions_before.count("invoice.paid")

    settlement = _receive(system_principal, invoice, case.minor, f"held-{case.name}", currency=case.currency)

    payment = settlement.payment
    assert payment is not None
    assert settlement.created is True
    assert (payment.status, payment.held_reason) == ("held", case.reason)
    assert (payment.amount_minor, payment.currency, payment.invoice_id) == (case.minor, case.currency, invoice.id)
    assert (payment.resolved_at, payment.resolved_by_id) == (None, None)
    assert _row(invoice) == row_before  # amount paid, status, paid_at: all as they were
    assert _actions(invoice) == [*actions_before, "payment.held"]
    assert _actions(invoice).count("invoice.paid") == paid_events_before
    assert _outbox(invoice) == outbox_before  # no invoice.paid, no receipt, no callback
    held = AuditEvent.objects.get(object_id=str(invoice.id), action="payment.held")
    assert held.payload == {
        "payment_id": str(payment.id),
        "gateway": "bank_transfer",
        "method": "bank_transfer",
        "transaction_id": f"held-{case.name}",
        "amount_minor": case.minor,
        "currency": case.currency,
        "status": "held",
        "held_reason": case.reason,
    }


def test_a_held_payment_does_not_count_toward_a_later_one(system_principal: SystemPrincipal, invoice: Invoice) -> None:
    _receive(system_principal, invoice, TOTAL + 500, "too-much")

    rest = _receive(system_principal, invoice, TOTAL, "right-amount")

    assert rest.payment is not None
    assert rest.payment.status == "applied"
    stored = _invoice(invoice)
    assert (stored.status, stored.amount_paid_minor, stored.amount_due_minor) == ("paid", TOTAL, 0)
    assert _applied_sum(invoice) == TOTAL
    assert sorted(Payment.objects.filter(invoice_id=invoice.id).values_list("status", "amount_minor")) == [
        ("applied", TOTAL),
        ("held", TOTAL + 500),
    ]


def test_a_draft_is_not_payable_either(system_principal: SystemPrincipal) -> None:
    draft = make_invoice(make_customer(), issue=False)
    row_before = _row(draft)

    payment = pay_invoice(draft, Money(draft.total_minor, "AUD"), "draft-transfer", principal=system_principal)

    assert (payment.status, payment.held_reason) == ("held", "invoice_not_payable")
    assert _row(draft) == row_before
    assert _actions(draft) == ["invoice.created", "payment.held"]
    assert _outbox(draft) == []


# --- idempotency ---------------------------------------------------------------------------


def test_the_same_transaction_twice_is_recorded_once(system_principal: SystemPrincipal, invoice: Invoice) -> None:
    first = _receive(system_principal, invoice, TOTAL, "transfer-once")
    counts = _counts()
    row = _row(invoice)

    again = _receive(system_principal, invoice, TOTAL, "transfer-once")
    differently = _receive(system_principal, invoice, 5, "transfer-once")  # the first report stands

    assert first.payment is not None
    assert (first.created, again.created, differently.created) == (True, False, False)
    assert again.payment is not None
    assert differently.payment is not None
    assert again.payment.id == differently.payment.id == first.payment.id
    assert Payment.objects.filter(transaction_id="transfer-once").count() == 1
    assert _counts() == counts
    assert _row(invoice) == row
    assert _actions(invoice).count("invoice.paid") == 1
    assert _outbox(invoice) == [(O2S, "invoice.paid"), (RECEIPT, "invoice.paid")]


def test_a_repeated_partial_payment_counts_once(system_principal: SystemPrincipal, invoice: Invoice) -> None:
    _receive(system_principal, invoice, 1000, "transfer-partial")
    _receive(system_principal, invoice, 1000, "transfer-partial")

    stored = _invoice(invoice)
    assert (stored.status, stored.amount_paid_minor, stored.amount_due_minor) == ("open", 1000, TOTAL - 1000)
    assert _actions(invoice).count("payment.recorded") == 1
    assert _outbox(invoice) == [(O2S, "payment.recorded"), (RECEIPT, "payment.recorded")]


def test_a_repeated_held_payment_is_held_once(system_principal: SystemPrincipal, invoice: Invoice) -> None:
    _receive(system_principal, invoice, TOTAL + 1, "transfer-over")
    counts = _counts()

    again = _receive(system_principal, invoice, TOTAL + 1, "transfer-over")

    assert again.created is False
    assert _counts() == counts
    assert _actions(invoice).count("payment.held") == 1


def test_the_same_transaction_id_at_another_gateway_is_another_payment(
    system_principal: SystemPrincipal, invoice: Invoice
) -> None:
    _receive(system_principal, invoice, 1000, "shared-id")

    other = payment_receive(
        principal=system_principal,
        invoice_id=invoice.id,
        amount=Money(1000, "AUD"),
        gateway=GatewayCode.PAYPAL,
        transaction_id="shared-id",
        method=PaymentMethod.PAYPAL,
        recorded_by="test:ledger",
    )

    assert other.created is True
    assert _invoice(invoice).amount_paid_minor == 2000


# --- refusals: nothing written -------------------------------------------------------------


@pytest.mark.parametrize("transaction_id", ["", "x" * 256])
def test_a_missing_or_overlong_transaction_id_is_refused_and_writes_nothing(
    system_principal: SystemPrincipal, invoice: Invoice, transaction_id: str
) -> None:
    counts = _counts()
    row = _row(invoice)

    with pytest.raises(ValueError, match="transaction_id"):
        _receive(system_principal, invoice, 1000, transaction_id)

    assert _counts() == counts
    assert _row(invoice) == row


def test_money_for_a_tampered_invoice_is_refused_writes_no_payment_and_is_audited_once(
    system_principal: SystemPrincipal, invoice: Invoice, settings: Any
) -> None:
    # the stored checksum no longer matches what is stored (as in test_invoice_lifecycle)
    settings.INVOICE_CHECKSUM_KEYS = "dev1:" + base64.b64encode(b"an-attacker-does-not-have-the-key!!").decode()
    counts = _counts()
    row = _row(invoice)

    for attempt in range(2):
        with pytest.raises(InvoiceChecksumMismatchError):
            _receive(system_principal, invoice, TOTAL, f"tampered-{attempt}")

    assert _row(invoice) == row
    # no payment, no attempt, no outbox message; one audit event: the first detection, once
    assert _counts() == {**counts, "audit": counts["audit"] + 1}
    assert _actions(invoice)[-1] == "invoice.checksum_mismatch"
    assert _outbox(invoice) == []


# --- the property: the invoice is the sum of its applied payments --------------------------


@dataclass
class Ledger:
    """What the ledger should hold after each call: the test's own model of it."""

    total: int
    paid: int = 0
    payments: dict[str, tuple[str, str]] = field(default_factory=dict)
    """transaction id -> (status, held reason)"""

    def expect(self, transaction_id: str, minor: int, currency: str) -> tuple[bool, str, str]:
        """(created, status, held reason) of receiving ``minor`` ``currency`` now."""
        if transaction_id in self.payments:
            return (False, *self.payments[transaction_id])
        if self.paid == self.total:
            outcome = ("held", "invoice_not_payable")
        elif currency != "AUD":
            outcome = ("held", "currency_mismatch")
        elif minor > self.total - self.paid:
            outcome = ("held", "overpayment")
        else:
            outcome = ("applied", "")
            self.paid += minor
        self.payments[transaction_id] = outcome
        return (True, *outcome)


operations = st.lists(
    st.tuples(
        st.one_of(
            st.integers(min_value=1, max_value=2 * TOTAL),  # partials and overpayments
            st.sampled_from(["rest", "rest+1", "half"]),  # exactly what is due, a cent more, about half
        ),
        st.sampled_from(["AUD", "AUD", "AUD", "USD", "NZD"]),
        st.one_of(st.none(), st.integers(min_value=0, max_value=5)),  # a new transaction, or an earlier one again
    ),
    min_size=1,
    max_size=6,
)


@hypothesis_settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=operations, unit=st.integers(min_value=1, max_value=5000))
def test_amount_paid_is_always_the_sum_of_the_applied_payments(
    system_principal: SystemPrincipal, operations: list[tuple[int | str, str, int | None]], unit: int
) -> None:
    with transaction.atomic():  # each example on its own invoice, rolled back after it
        invoice = make_invoice(make_customer(), lines=[("VPS", 1, unit)])
        model = Ledger(total=invoice.total_minor)
        used: list[str] = []
        for step, (amount, currency, repeat) in enumerate(operations):
            due = model.total - model.paid
            if amount == "rest":
                minor = due or model.total
            elif amount == "rest+1":
                minor = due + 1
            elif amount == "half":
                minor = max(due // 2, 1)
            else:
                assert isinstance(amount, int)
                minor = amount
            transaction_id = used[repeat % len(used)] if repeat is not None and used else f"txn-{step}"
            used.append(transaction_id)

            settlement = _receive(system_principal, invoice, minor, transaction_id, currency=currency)

            created, status, reason = model.expect(transaction_id, minor, currency)
            event(f"{'new' if created else 'repeat'} {status} {reason}".strip())
            stored = _invoice(invoice)
            payments = list(Payment.objects.filter(invoice_id=invoice.id))
            applied = sum(p.amount_minor for p in payments if p.status == "applied")
            assert settlement.payment is not None
            assert (settlement.created, settlement.payment.status, settlement.payment.held_reason) == (
                created,
                status,
                reason,
            )
            assert stored.amount_paid_minor == applied == model.paid
            assert applied <= stored.total_minor
            assert all(p.held_reason == "" for p in payments if p.status == "applied")
            assert all(p.held_reason != "" for p in payments if p.status == "held")
            assert len(payments) == len(model.payments) == len(set(used))
            assert (stored.status == "paid") == (stored.total_minor - applied == 0)
            if stored.status == "open":
                assert stored.amount_due_minor == stored.total_minor - stored.amount_paid_minor > 0
            else:
                assert (stored.status, stored.amount_due_minor, stored.amount_paid_minor) == ("paid", 0, model.total)
            actions = _actions(invoice)
            assert actions.count("invoice.paid") == (1 if stored.status == "paid" else 0)
            assert actions.count("payment.recorded") + actions.count("invoice.paid") == sum(
                1 for s, _ in model.payments.values() if s == "applied"
            )
            assert actions.count("payment.held") == sum(1 for s, _ in model.payments.values() if s == "held")
        event(f"invoice ended {stored.status}")
        transaction.set_rollback(True)


# --- the gateway path: payment_settle ------------------------------------------------------


def _attempt(invoice: Invoice, *, session_id: str = "cs_test_1") -> PaymentAttempt:
    return PaymentAttempt.objects.create(
        invoice=invoice,
        customer_id=invoice.customer_id,
        gateway=GatewayCode.STRIPE,
        status=AttemptStatus.OPEN,
        amount_minor=invoice.amount_due_minor,
        currency=invoice.currency,
        gateway_session_id=session_id,
    )


def _reported(
    invoice: Invoice | None,
    *,
    minor: int = TOTAL,
    status: GatewayPaymentStatus = GatewayPaymentStatus.SUCCEEDED,
    session_id: str = "cs_test_1",
    attempt_id: uuid.UUID | None = None,
    transaction_id: str = "pi_test_1",
) -> GatewayPayment:
    return GatewayPayment(
        gateway=GatewayCode.STRIPE,
        transaction_id=transaction_id,
        status=status,
        amount=Money(minor, "AUD"),
        method=PaymentMethod.CARD,
        session_id=session_id,
        invoice_id=invoice.id if invoice is not None else None,
        attempt_id=attempt_id,
        card=CardFacts(brand="visa", country="AU", cvc_check="pass", three_d_secure_result="authenticated"),
        failure_reason="card_declined" if status is GatewayPaymentStatus.FAILED else "",
        gateway_status=str(status),
    )


def test_a_card_payment_of_our_attempt_is_applied_and_the_attempt_succeeds(
    system_principal: SystemPrincipal, invoice: Invoice
) -> None:
    attempt = _attempt(invoice)

    settlement = payment_settle(principal=system_principal, reported=_reported(invoice), recorded_by="webhook")

    payment = settlement.payment
    assert payment is not None
    assert (settlement.created, settlement.attempt_id, settlement.ignored_reason) == (True, attempt.id, "")
    assert (payment.status, payment.held_reason, payment.attempt_id) == ("applied", "", attempt.id)
    assert (payment.gateway, payment.method, payment.transaction_id, payment.recorded_by) == (
        "stripe",
        "card",
        "pi_test_1",
        "webhook",
    )
    assert (payment.card_brand, payment.card_country, payment.cvc_check, payment.three_d_secure_result) == (
        "visa",
        "AU",
        "pass",
        "authenticated",
    )
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.SUCCEEDED
    assert attempt.settled_at is not None
    stored = _invoice(invoice)
    assert (stored.status, stored.amount_paid_minor, stored.amount_due_minor) == ("paid", TOTAL, 0)
    assert _actions(invoice)[-1] == "invoice.paid"
    assert _outbox(invoice) == [(O2S, "invoice.paid"), (RECEIPT, "invoice.paid")]

    counts = _counts()
    again = payment_settle(principal=system_principal, reported=_reported(invoice), recorded_by="return page")
    assert again.payment is not None
    assert (again.created, again.payment.id) == (False, payment.id)
    assert _counts() == counts


def test_the_attempt_is_found_by_its_id_when_the_report_names_no_session(
    system_principal: SystemPrincipal, invoice: Invoice
) -> None:
    attempt = _attempt(invoice)

    settlement = payment_settle(
        principal=system_principal, reported=_reported(invoice, session_id="", attempt_id=attempt.id), recorded_by="t"
    )

    assert settlement.payment is not None
    assert (settlement.payment.status, settlement.payment.attempt_id) == ("applied", attempt.id)


def test_a_card_payment_of_another_amount_than_the_attempt_is_held(
    system_principal: SystemPrincipal, invoice: Invoice
) -> None:
    attempt = _attempt(invoice)
    row = _row(invoice)
    outbox = _outbox(invoice)

    settlement = payment_settle(
        principal=system_principal, reported=_reported(invoice, minor=TOTAL - 1), recorded_by="webhook"
    )

    assert settlement.payment is not None
    assert (settlement.payment.status, settlement.payment.held_reason) == ("held", "amount_mismatch")
    assert settlement.payment.attempt_id == attempt.id
    assert _row(invoice) == row
    assert _actions(invoice)[-1] == "payment.held"
    assert "invoice.paid" not in _actions(invoice)
    assert _outbox(invoice) == outbox == []


def test_a_card_payment_without_an_attempt_of_ours_for_exactly_the_amount_due_is_applied(
    system_principal: SystemPrincipal, invoice: Invoice
) -> None:
    """Created at the gateway directly (not from our pay page): it must be for exactly what
    is due, since a card payment is never partial."""
    settlement = payment_settle(
        principal=system_principal, reported=_reported(invoice, session_id="cs_not_ours"), recorded_by="webhook"
    )

    assert settlement.payment is not None
    assert (settlement.payment.status, settlement.payment.held_reason) == ("applied", "")
    assert (settlement.payment.attempt_id, settlement.attempt_id) == (None, None)
    stored = _invoice(invoice)
    assert (stored.status, stored.amount_paid_minor, stored.amount_due_minor) == ("paid", TOTAL, 0)
    assert _outbox(invoice) == [(O2S, "invoice.paid"), (RECEIPT, "invoice.paid")]


@pytest.mark.parametrize("minor", [1, TOTAL - 1])
def test_a_card_payment_without_an_attempt_of_ours_for_less_than_is_due_is_held(
    system_principal: SystemPrincipal, invoice: Invoice, minor: int
) -> None:
    row = _row(invoice)

    settlement = payment_settle(
        principal=system_principal,
        reported=_reported(invoice, minor=minor, session_id="cs_not_ours"),
        recorded_by="webhook",
    )

    assert settlement.payment is not None
    assert (settlement.payment.status, settlement.payment.held_reason) == ("held", "amount_mismatch")
    assert (settlement.payment.attempt_id, settlement.attempt_id) == (None, None)
    assert _row(invoice) == row
    assert _actions(invoice)[-1] == "payment.held"
    assert "invoice.paid" not in _actions(invoice)
    assert _outbox(invoice) == []


class ReviewAll:
    """Fraud rules that want to look at every payment (``PAYMENT_RISK_ASSESSOR``)."""

    def before_start(self, context: PaymentStartContext) -> RiskAssessment:
        return RiskAssessment(RiskDecision.REVIEW)

    def after_report(self, context: PaymentReportedContext) -> RiskAssessment:
        return RiskAssessment(RiskDecision.REVIEW, ("test",))


REVIEW_ALL = ReviewAll()


def test_a_payment_the_fraud_rules_do_not_allow_is_held_for_review(
    system_principal: SystemPrincipal, invoice: Invoice, settings: Any
) -> None:
    settings.PAYMENT_RISK_ASSESSOR = f"{__name__}.REVIEW_ALL"
    attempt = _attempt(invoice)
    row = _row(invoice)

    settlement = payment_settle(principal=system_principal, reported=_reported(invoice), recorded_by="webhook")

    assert settlement.payment is not None
    assert (settlement.payment.status, settlement.payment.held_reason) == ("held", "risk_review")
    assert settlement.payment.attempt_id == attempt.id
    assert _row(invoice) == row
    assert _actions(invoice)[-1] == "payment.held"
    assert _outbox(invoice) == [("o2s.callback", "payment.review_required")]  # never invoice.paid


def test_a_report_that_names_no_invoice_and_no_attempt_is_ignored_and_writes_nothing(
    system_principal: SystemPrincipal, invoice: Invoice
) -> None:
    counts = _counts()

    settlement = payment_settle(
        principal=system_principal, reported=_reported(None, session_id="cs_not_ours"), recorded_by="webhook"
    )

    assert (settlement.payment, settlement.created) == (None, False)
    assert settlement.ignored_reason != ""
    assert _counts() == counts


def test_a_report_naming_another_invoice_than_its_attempt_is_refused_and_writes_nothing(
    system_principal: SystemPrincipal, invoice: Invoice
) -> None:
    attempt = _attempt(invoice)
    other = make_invoice(make_customer())
    counts = _counts()
    rows = (_row(invoice), _row(other))

    with pytest.raises(PaymentInvoiceMismatchError):
        payment_settle(principal=system_principal, reported=_reported(other), recorded_by="webhook")

    assert _counts() == counts
    assert (_row(invoice), _row(other)) == rows
    attempt.refresh_from_db()
    assert (attempt.status, attempt.settled_at) == (AttemptStatus.OPEN, None)


@pytest.mark.parametrize(
    ("reported_status", "attempt_status"),
    [(GatewayPaymentStatus.FAILED, AttemptStatus.FAILED), (GatewayPaymentStatus.CANCELED, AttemptStatus.EXPIRED)],
)
def test_a_failed_or_cancelled_payment_closes_an_attempt_without_a_session(
    system_principal: SystemPrincipal,
    invoice: Invoice,
    reported_status: GatewayPaymentStatus,
    attempt_status: AttemptStatus,
) -> None:
    attempt = _attempt(invoice, session_id="")
    counts = _counts()
    row = _row(invoice)

    settlement = payment_settle(
        principal=system_principal,
        reported=_reported(invoice, status=reported_status, session_id="", attempt_id=attempt.id),
        recorded_by="webhook",
    )

    assert (settlement.status, settlement.payment, settlement.attempt_id) == (reported_status, None, attempt.id)
    attempt.refresh_from_db()
    assert attempt.status == attempt_status
    assert attempt.settled_at is not None
    assert attempt.gateway_status == str(reported_status)
    assert attempt.failure_reason == ("card_declined" if reported_status is GatewayPaymentStatus.FAILED else "")
    assert _counts() == counts  # no payment, no audit event, no outbox message
    assert _row(invoice) == row


@pytest.mark.parametrize(("session_closed", "attempt_status"), [(False, "open"), (True, "failed")])
def test_a_declined_try_keeps_the_attempt_open_while_its_session_can_still_take_payment(
    system_principal: SystemPrincipal, invoice: Invoice, session_closed: bool, attempt_status: str
) -> None:
    attempt = _attempt(invoice)
    counts = _counts()

    payment_settle(
        principal=system_principal,
        reported=replace(_reported(invoice, status=GatewayPaymentStatus.FAILED), session_closed=session_closed),
        recorded_by="t",
    )

    attempt.refresh_from_db()
    assert (attempt.status, attempt.failure_reason) == (attempt_status, "card_declined")
    assert (attempt.settled_at is not None) == session_closed
    assert _counts() == counts


# --- row-level security --------------------------------------------------------------------


def _as_customer(customer_id: uuid.UUID) -> CustomerPrincipal:
    return CustomerPrincipal(user_id=10_000, customer_ids=frozenset({customer_id}))


def _raw_count(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        return int(cursor.fetchone()[0])


def test_a_customer_sees_only_its_own_payments_and_attempts(system_principal: SystemPrincipal) -> None:
    owner: Customer = make_customer()
    stranger: Customer = make_customer()
    invoice = make_invoice(owner)
    _attempt(invoice)
    partial = pay_invoice(invoice, 1000, principal=system_principal)
    held = pay_invoice(invoice, Money(TOTAL, "USD"), principal=system_principal)
    WebhookEvent.objects.create(
        gateway="stripe", event_id="evt_rls_1", event_type="checkout.session.completed", body="{}"
    )

    with rls.acting_as(_as_customer(stranger.id)):
        assert list(Payment.objects.all()) == []
        assert not Payment.objects.filter(id=partial.id).exists()
        assert PaymentAttempt.objects.count() == 0
        assert (_raw_count("gateways_payment"), _raw_count("gateways_paymentattempt")) == (0, 0)
        assert _raw_count("gateways_webhookevent") == 0
    with rls.acting_as(_as_customer(owner.id)):
        assert set(Payment.objects.values_list("id", flat=True)) == {partial.id, held.id}
        assert PaymentAttempt.objects.filter(invoice_id=invoice.id).count() == 1
        assert (_raw_count("gateways_payment"), _raw_count("gateways_paymentattempt")) == (2, 1)
        assert _raw_count("gateways_webhookevent") == 0  # names no customer: staff and system only


# --- held payments: resolved by staff ------------------------------------------------------


def test_billing_staff_resolve_held_payments_and_applied_ones_are_untouched(
    system_principal: SystemPrincipal, invoice: Invoice
) -> None:
    user: User = UserFactory.create()
    staff = StaffPrincipal(user_id=user.id, username=user.username)
    applied = pay_invoice(invoice, 1000, "applied-1", principal=system_principal)
    held = pay_invoice(invoice, Money(500, "USD"), "held-1", principal=system_principal)
    applied_row = Payment.objects.filter(id=applied.id).values().get()
    outbox = _outbox(invoice)

    changed = payment_held_resolve(principal=staff, payment_ids=[held.id, applied.id], user_id=user.id)

    assert changed == 1
    held.refresh_from_db()
    assert (held.status, held.held_reason, held.resolved_by_id) == ("held", "currency_mismatch", user.id)
    assert held.resolved_at is not None
    assert Payment.objects.filter(id=applied.id).values().get() == applied_row
    resolved = AuditEvent.objects.get(object_id=str(invoice.id), action="payment.held_resolved")
    assert (resolved.actor_type, resolved.actor_id, resolved.customer_id) == (
        "staff",
        str(user.id),
        invoice.customer_id,
    )
    assert (resolved.payload["payment_id"], resolved.payload["held_reason"]) == (str(held.id), "currency_mismatch")
    assert _invoice(invoice).amount_paid_minor == 1000
    assert _outbox(invoice) == outbox

    counts = _counts()
    assert payment_held_resolve(principal=staff, payment_ids=[held.id], user_id=user.id) == 0  # already resolved
    assert _counts() == counts
