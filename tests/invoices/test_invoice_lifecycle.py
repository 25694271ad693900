"""Creating, issuing, voiding and paying invoices through the services."""

from __future__ import annotations

import base64
import datetime as dt
import re
import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, IntegrityError, connection, transaction

from audit.models import AuditEvent
from billing.models import Customer
from billing.services import customer_update
from gateways.base import GatewayCode, PaymentMethod
from gateways.models import Payment
from gateways.services.ledger import payment_receive
from invoices import checksum
from invoices.errors import (
    InvalidInvoiceError,
    InvoiceChecksumMismatchError,
    InvoiceNotFoundError,
    InvoiceStateError,
)
from invoices.models import Invoice, InvoiceLine, InvoiceStatus, TaxRate
from invoices.pricing import InvoiceLineInput, seller_today
from invoices.services import (
    invoice_create,
    invoice_issue,
    invoice_mark_uncollectible,
    invoice_void,
)
from paymenter import rls
from paymenter.errors import PaymenterError
from paymenter.models import OutboxMessage
from paymenter.money import Money
from paymenter.principals import CustomerPrincipal, SystemPrincipal
from tests.factories import make_customer, make_invoice, make_paid_invoice, pay_invoice, start_card_payment

pytestmark = pytest.mark.usefixtures("db", "system_principal")

NUMBER_RE = re.compile(r"^INV-(\d{4})-(\d{6})$")


def _audit_actions(object_id: object) -> list[str]:
    return list(
        AuditEvent.objects.filter(object_id=str(object_id)).order_by("sequence").values_list("action", flat=True)
    )


def _counts() -> tuple[int, int, int, int, int]:
    return (
        Invoice.objects.count(),
        InvoiceLine.objects.count(),
        AuditEvent.objects.count(),
        Payment.objects.count(),
        OutboxMessage.objects.count(),
    )


def _outbox_types(invoice_id: object) -> list[str]:
    return [
        message.payload["type"]
        for message in OutboxMessage.objects.filter(ordering_key=f"invoice:{invoice_id}").order_by("id")
    ]


def test_australian_customer_is_charged_ten_percent_gst_per_line(system_principal: SystemPrincipal) -> None:
    customer = make_customer(billing_country="AU")
    invoice = make_invoice(customer, lines=[("VPS", 3, 1999), ("IPv4 address", 1, 5)])
    lines = list(invoice.lines.order_by("position"))
    assert [(ln.subtotal_minor, ln.tax_minor, ln.total_minor) for ln in lines] == [(5997, 600, 6597), (5, 1, 6)]
    assert [ln.tax_code for ln in lines] == ["GST", "GST"]
    assert [ln.tax_rate for ln in lines] == [Decimal("0.1000"), Decimal("0.1000")]
    assert (invoice.subtotal_minor, invoice.tax_minor, invoice.total_minor) == (6002, 601, 6603)
    assert invoice.amount_due_minor == 6603
    assert invoice.currency == "AUD"


def test_customer_abroad_is_gst_free(system_principal: SystemPrincipal) -> None:
    customer = make_customer(billing_country="US")
    invoice = make_invoice(customer, lines=[("VPS", 2, 1000)], currency="USD")
    line = invoice.lines.get()
    assert (line.tax_code, line.tax_rate, line.tax_minor) == ("GST_FREE_EXPORT", Decimal("0.0000"), 0)
    assert (invoice.subtotal_minor, invoice.tax_minor, invoice.total_minor) == (2000, 0, 2000)


def test_gst_rate_comes_from_the_effective_dated_row(system_principal: SystemPrincipal) -> None:
    today = seller_today()
    TaxRate.objects.filter(code="GST", country="AU", effective_to__isnull=True).update(effective_to=today)
    TaxRate.objects.create(code="GST", country="AU", rate=Decimal("0.1500"), effective_from=today)
    invoice = make_invoice(make_customer(), lines=[("VPS", 1, 1000)])
    assert (invoice.tax_minor, invoice.lines.get().tax_rate) == (150, Decimal("0.1500"))


def test_issuing_assigns_number_dates_frozen_details_and_a_valid_checksum(system_principal: SystemPrincipal) -> None:
    customer = make_customer(name="Salamanca Hosting", email="ap@salamanca.example")
    invoice = make_invoice(customer)
    invoice.refresh_from_db()
    match = NUMBER_RE.match(invoice.number or "")
    assert invoice.issue_date is not None
    assert match is not None
    assert int(match.group(1)) == invoice.issue_date.year
    assert invoice.status == InvoiceStatus.OPEN
    assert invoice.issue_date == seller_today()
    assert invoice.due_date == invoice.issue_date + dt.timedelta(days=14)
    assert invoice.is_tax_invoice is True
    assert invoice.seller_details["abn"] == "51 824 753 556"
    assert invoice.buyer_details["name"] == "Salamanca Hosting"
    assert invoice.buyer_details["email"] == "ap@salamanca.example"
    assert invoice.buyer_country == "AU"
    assert invoice.checksum_key_id == "dev1"
    assert checksum.is_valid(invoice)
    assert _audit_actions(invoice.id) == ["invoice.created", "invoice.issued"]


def test_buyer_details_stay_frozen_when_the_customer_changes(system_principal: SystemPrincipal) -> None:
    customer = make_customer(name="Old Name")
    invoice = make_invoice(customer)
    customer_update(principal=system_principal, customer_id=customer.id, changes={"name": "New Name"})
    assert Invoice.objects.get(id=invoice.id).buyer_details["name"] == "Old Name"


def test_numbers_are_gapless_and_a_rolled_back_issue_gives_its_number_back(
    system_principal: SystemPrincipal,
) -> None:
    customer = make_customer()
    first = make_invoice(customer)
    draft = make_invoice(customer, issue=False)

    def issue_then_crash() -> None:
        with transaction.atomic():
            invoice_issue(principal=system_principal, invoice_id=draft.id)
            raise RuntimeError("crash after issuing")

    with pytest.raises(RuntimeError):
        issue_then_crash()
    second = invoice_issue(principal=system_principal, invoice_id=draft.id)
    third = make_invoice(customer)
    numbers = [int(NUMBER_RE.match(inv.number or "").group(2)) for inv in (first, second, third)]  # type: ignore[union-attr]
    assert numbers == [numbers[0], numbers[0] + 1, numbers[0] + 2]


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"currency": "XYZ"}, "unknown_currency"),
        ({"currency": 12}, "unknown_currency"),
        ({"lines": []}, "invalid_invoice"),
        ({"lines": [InvoiceLineInput("VPS", -1, 100)]}, "invalid_invoice"),
        ({"lines": [InvoiceLineInput("VPS", 0, 100)]}, "invalid_invoice"),
        ({"lines": [InvoiceLineInput("VPS", 10**9, 100)]}, "invalid_invoice"),
        ({"lines": [InvoiceLineInput("VPS", 1, -100)]}, "invalid_invoice"),
        ({"lines": [InvoiceLineInput("VPS", 1, 10**16)]}, "invalid_invoice"),
        ({"lines": [InvoiceLineInput("", 1, 100)]}, "invalid_invoice"),
        ({"lines": [InvoiceLineInput("VPS", True, 100)]}, "invalid_invoice"),
        (
            {"lines": [InvoiceLineInput("VPS", 1, 100, currency="AUD"), InvoiceLineInput("DNS", 1, 5, currency="USD")]},
            "currency_mismatch",
        ),
        (
            {
                "lines": [
                    InvoiceLineInput("VPS", 1, 100, period_start=dt.date(2026, 2, 1), period_end=dt.date(2026, 1, 1))
                ]
            },
            "invalid_invoice",
        ),
    ],
)
def test_bad_input_is_refused_and_writes_nothing(
    system_principal: SystemPrincipal, kwargs: dict[str, Any], code: str
) -> None:
    customer = make_customer()
    before = _counts()
    arguments: dict[str, Any] = {"lines": [InvoiceLineInput("VPS", 1, 100)], "currency": "AUD", **kwargs}
    with pytest.raises(PaymenterError) as excinfo:
        invoice_create(principal=system_principal, customer=customer, issue=True, **arguments)
    assert excinfo.value.code == code
    assert 400 <= excinfo.value.status_code < 500
    assert _counts() == before


def test_an_invoice_for_a_customer_outside_the_principals_scope_is_refused_by_the_database() -> None:
    """The caller reads the customer; were it to pass one its principal cannot see, row-level
    security refuses the rows (the line guard fails closed in a customer's scope)."""
    customer, other = make_customer(), make_customer()
    before = _counts()
    principal = CustomerPrincipal(user_id=1, customer_ids=frozenset({other.id}))
    with pytest.raises(DatabaseError, match="immutable"), transaction.atomic():
        invoice_create(principal=principal, customer=customer, lines=[InvoiceLineInput("VPS", 1, 100)], issue=True)
    assert _counts() == before


def _raw(sql: str, *params: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))


def test_issued_invoice_is_immutable_in_the_database(system_principal: SystemPrincipal) -> None:
    invoice = make_invoice(make_customer())
    for statement in (
        lambda: Invoice.objects.filter(id=invoice.id).update(total_minor=1, subtotal_minor=1, tax_minor=0),
        lambda: Invoice.objects.filter(id=invoice.id).update(number="INV-2000-000001"),
        lambda: Invoice.objects.filter(id=invoice.id).update(status="draft"),
        lambda: _raw("DELETE FROM invoices_invoiceline WHERE invoice_id = %s", invoice.id),
        lambda: _raw("DELETE FROM invoices_invoice WHERE id = %s", invoice.id),
        lambda: InvoiceLine.objects.filter(invoice_id=invoice.id).update(description="changed"),
        lambda: InvoiceLine.objects.filter(invoice_id=invoice.id).delete(),
    ):
        with pytest.raises(DatabaseError, match=r"immutable|cannot be deleted"), transaction.atomic():
            statement()
    stored = Invoice.objects.get(id=invoice.id)
    assert (stored.number, stored.total_minor, stored.status) == (invoice.number, invoice.total_minor, "open")
    assert checksum.is_valid(stored)


_LINE_SQL = (
    "INSERT INTO invoices_invoiceline (id, invoice_id, customer_id, position, description, product_code, quantity,"
    " unit_amount_minor, tax_code, tax_rate, subtotal_minor, tax_minor, total_minor)"
    " VALUES (gen_random_uuid(), %s, %s, 99, 'added later', '', 1, 1, 'GST', 0.1, 1, 0, 1)"
)


def test_a_line_can_be_written_ahead_only_of_an_invoice_its_transaction_then_writes() -> None:
    """Migration invoices/0009: a line whose invoice does not exist yet is accepted in
    system scope, and the deferred foreign key refuses it unless the invoice follows."""
    customer = make_customer()
    before = _counts()

    def write_a_line_ahead_then_commit() -> None:
        with transaction.atomic():
            _raw(_LINE_SQL, uuid.uuid4(), customer.id)  # accepted: its invoice could still follow
            _raw("SET CONSTRAINTS ALL IMMEDIATE")  # what COMMIT checks

    with pytest.raises(IntegrityError, match="foreign key"):
        write_a_line_ahead_then_commit()
    assert _counts() == before


def test_no_line_is_added_to_an_issued_invoice_in_any_scope() -> None:
    invoice = make_invoice(make_customer())
    other = make_customer()
    with pytest.raises(DatabaseError, match="immutable"), transaction.atomic():
        _raw(_LINE_SQL, invoice.id, invoice.customer_id)
    # a customer's scope cannot see the invoice: "not found" there may be someone else's
    # invoice, so the line is refused instead of being written ahead
    customer_scope = CustomerPrincipal(user_id=1, customer_ids=frozenset({other.id}))
    with rls.acting_as(customer_scope), pytest.raises(DatabaseError, match="immutable"), transaction.atomic():
        _raw(_LINE_SQL, invoice.id, other.id)
    assert InvoiceLine.objects.filter(invoice_id=invoice.id).count() == 2
    assert checksum.is_valid(Invoice.objects.get(id=invoice.id))


def test_void_an_open_invoice_is_audited(system_principal: SystemPrincipal) -> None:
    invoice = make_invoice(make_customer())
    voided = invoice_void(principal=system_principal, invoice_id=invoice.id, reason="customer cancelled")
    assert (voided.status, voided.void_reason, voided.amount_due_minor) == ("void", "customer cancelled", 0)
    assert _audit_actions(invoice.id)[-1] == "invoice.voided"
    with pytest.raises(InvoiceStateError):
        invoice_void(principal=system_principal, invoice_id=invoice.id)


def test_paid_invoice_cannot_be_voided(system_principal: SystemPrincipal) -> None:
    invoice = make_paid_invoice(make_customer())
    assert (invoice.status, invoice.amount_due_minor) == ("paid", 0)
    before = _counts()
    with pytest.raises(InvoiceStateError) as excinfo:
        invoice_void(principal=system_principal, invoice_id=invoice.id)
    assert excinfo.value.status_code == 409
    assert Invoice.objects.get(id=invoice.id).status == "paid"
    assert _counts() == before


def test_receiving_the_exact_amount_due_marks_paid(system_principal: SystemPrincipal) -> None:
    invoice = make_invoice(make_customer())

    payment = pay_invoice(invoice, Money(invoice.total_minor, "AUD"), "pi_123")

    paid = Invoice.objects.get(id=invoice.id)
    assert (paid.status, paid.amount_paid_minor, paid.amount_due_minor) == ("paid", invoice.total_minor, 0)
    assert paid.paid_at is not None
    assert (payment.status, payment.held_reason, payment.amount_minor) == ("applied", "", invoice.total_minor)
    event = AuditEvent.objects.filter(object_id=str(invoice.id), action="invoice.paid").get()
    assert event.payload == {
        "number": invoice.number,
        "payment_id": str(payment.id),
        "gateway": "bank_transfer",
        "method": "bank_transfer",
        "transaction_id": "pi_123",
        "amount_minor": invoice.total_minor,
        "currency": "AUD",
        "status": "applied",
        "held_reason": "",
    }
    assert _outbox_types(invoice.id) == ["invoice.paid", "invoice.paid"]  # the O2S callback and the receipt


def test_receiving_less_than_is_due_is_a_partial_payment(system_principal: SystemPrincipal) -> None:
    invoice = make_invoice(make_customer())
    assert invoice.total_minor == 3190

    payment = pay_invoice(invoice, Money(3189, "AUD"), "transfer-partial")

    stored = Invoice.objects.get(id=invoice.id)
    assert (stored.status, stored.amount_paid_minor, stored.amount_due_minor, stored.paid_at) == ("open", 3189, 1, None)
    assert (payment.status, payment.held_reason) == ("applied", "")
    assert _audit_actions(invoice.id)[-1] == "payment.recorded"
    assert "invoice.paid" not in _audit_actions(invoice.id)
    assert _outbox_types(invoice.id) == ["payment.recorded", "payment.recorded"]


@pytest.mark.parametrize(
    ("amount", "held_reason"),
    [(Money(3191, "AUD"), "overpayment"), (Money(3190, "USD"), "currency_mismatch")],
)
def test_more_than_is_due_or_another_currency_is_held_and_never_marks_paid(
    system_principal: SystemPrincipal, amount: Money, held_reason: str
) -> None:
    invoice = make_invoice(make_customer())
    assert invoice.total_minor == 3190
    audit_before = _audit_actions(invoice.id)

    payment = pay_invoice(invoice, amount, "transfer-odd")

    stored = Invoice.objects.get(id=invoice.id)
    assert (stored.status, stored.amount_paid_minor, stored.amount_due_minor) == ("open", 0, 3190)
    assert (payment.status, payment.held_reason) == ("held", held_reason)
    assert (payment.amount_minor, payment.currency) == (amount.minor, amount.currency)
    assert _audit_actions(invoice.id) == [*audit_before, "payment.held"]
    assert _outbox_types(invoice.id) == []


@pytest.mark.parametrize("minor", [0, -3190])
def test_receiving_nothing_or_a_negative_amount_is_refused_and_writes_nothing(
    system_principal: SystemPrincipal, minor: int
) -> None:
    invoice = make_invoice(make_customer())
    before = _counts()
    with pytest.raises(ValueError, match="more than nothing"):  # refused before any write
        pay_invoice(invoice, Money(minor, "AUD"), "transfer-nothing")
    stored = Invoice.objects.get(id=invoice.id)
    assert (stored.status, stored.amount_paid_minor) == ("open", 0)
    assert _counts() == before


def _other_checksum_key(settings: Any) -> None:
    settings.INVOICE_CHECKSUM_KEYS = "dev1:" + base64.b64encode(b"an-attacker-does-not-have-the-key!!").decode()


def test_checksum_mismatch_refuses_payment_and_is_audited(system_principal: SystemPrincipal, settings: Any) -> None:
    invoice = make_invoice(make_customer())
    _other_checksum_key(settings)  # the stored checksum no longer matches what is stored
    with pytest.raises(InvoiceChecksumMismatchError) as excinfo:
        payment_receive(
            principal=system_principal,
            invoice_id=invoice.id,
            amount=Money(invoice.total_minor, "AUD"),
            gateway=GatewayCode.BANK_TRANSFER,
            transaction_id="pi_1",
            method=PaymentMethod.BANK_TRANSFER,
            recorded_by="test",
        )
    assert excinfo.value.code == "invoice_checksum_mismatch"
    stored = Invoice.objects.get(id=invoice.id)
    assert (stored.status, stored.amount_paid_minor) == ("open", 0)
    assert not Payment.objects.filter(invoice_id=invoice.id).exists()
    assert _outbox_types(invoice.id) == []
    assert _audit_actions(invoice.id)[-1] == "invoice.checksum_mismatch"
    with pytest.raises(InvoiceChecksumMismatchError):
        start_card_payment(invoice, principal=system_principal)
    # the tampering is audited once, at its first detection, not once per attempt
    assert _audit_actions(invoice.id).count("invoice.checksum_mismatch") == 1


def test_checksum_covers_what_is_owed(system_principal: SystemPrincipal) -> None:
    invoice = make_invoice(make_customer())
    lines = list(invoice.lines.all())
    assert checksum.is_valid(invoice, lines)
    for field, value in (
        ("total_minor", 1),
        ("currency", "USD"),
        ("number", "INV-1999-000001"),
        ("customer_id", lines[0].invoice_id),
    ):
        tampered = Invoice.objects.get(id=invoice.id)
        setattr(tampered, field, value)
        assert not checksum.is_valid(tampered, lines), field
    lines[0].unit_amount_minor += 1
    assert not checksum.is_valid(invoice, lines)


def test_verify_invoice_checksums_command(system_principal: SystemPrincipal, settings: Any, capsys: Any) -> None:
    make_invoice(make_customer())
    call_command("verify_invoice_checksums")
    assert "0 mismatches" in capsys.readouterr().out
    _other_checksum_key(settings)
    with pytest.raises(CommandError, match=r"[1-9]\d* mismatches"):
        call_command("verify_invoice_checksums")


def test_customer_model_keeps_country_in_clear(system_principal: SystemPrincipal) -> None:
    customer = make_customer(billing_country="nz")
    assert Customer.objects.filter(billing_country="NZ", id=customer.id).exists()


def test_malformed_invoice_id_is_not_found(system_principal: SystemPrincipal) -> None:
    with pytest.raises(InvoiceNotFoundError):
        invoice_void(principal=system_principal, invoice_id="not-a-uuid")


def test_open_invoice_written_off_as_uncollectible_can_still_be_paid_late(system_principal: SystemPrincipal) -> None:
    invoice = make_invoice(make_customer())

    written_off = invoice_mark_uncollectible(
        principal=system_principal, invoice_id=invoice.id, reason="dunning exhausted"
    )

    assert (written_off.status, written_off.amount_due_minor) == ("uncollectible", invoice.total_minor)
    event = AuditEvent.objects.get(object_id=str(invoice.id), action="invoice.marked_uncollectible")
    assert event.payload == {
        "number": invoice.number,
        "amount_due_minor": invoice.total_minor,
        "reason": "dunning exhausted",
    }
    payment = pay_invoice(invoice, Money(invoice.total_minor, "AUD"), "late-transfer-1")
    paid = Invoice.objects.get(id=invoice.id)
    assert (payment.status, paid.status, paid.amount_paid_minor, paid.amount_due_minor) == (
        "applied",
        "paid",
        invoice.total_minor,
        0,
    )


@pytest.mark.parametrize("state", ["draft", "void", "paid", "uncollectible"])
def test_only_open_invoices_can_be_written_off(system_principal: SystemPrincipal, state: str) -> None:
    invoice = make_invoice(make_customer(), issue=state != "draft")
    if state == "void":
        invoice_void(principal=system_principal, invoice_id=invoice.id)
    elif state == "paid":
        pay_invoice(invoice)
    elif state == "uncollectible":
        invoice_mark_uncollectible(principal=system_principal, invoice_id=invoice.id, reason="first")
    before = _counts()

    with pytest.raises(InvoiceStateError):
        invoice_mark_uncollectible(principal=system_principal, invoice_id=invoice.id, reason="again")

    assert Invoice.objects.get(id=invoice.id).status == state
    assert _counts() == before


def test_writing_off_needs_a_reason(system_principal: SystemPrincipal) -> None:
    invoice = make_invoice(make_customer())
    before = _counts()

    with pytest.raises(InvalidInvoiceError):
        invoice_mark_uncollectible(principal=system_principal, invoice_id=invoice.id, reason="  ")

    assert Invoice.objects.get(id=invoice.id).status == "open"
    assert _counts() == before
