"""Recording bank transfers: by hand and from statements, through the one ledger path,
never twice; every refusal writes nothing (no payment, no audit row, no outbox message)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from django.contrib.auth.models import User

from gateways.bank_transfer.errors import (
    BankStatementInvalidError,
    BankStatementLineNotOpenError,
    BankTransferAlreadyRecordedError,
    BankTransferInvalidError,
    BankTransferPossibleDuplicateError,
    PaymentReferenceInvalidError,
    PaymentReferenceMistypedError,
    PaymentReferenceUnknownInvoiceError,
)
from gateways.bank_transfer.references import payment_reference_for, reference_print
from gateways.models import BankStatementImport, BankStatementLine, Payment
from gateways.services.bank_transfers import (
    bank_statement_import,
    bank_statement_line_ignore,
    bank_statement_line_resolve,
    bank_transfer_record,
)
from invoices.models import Invoice
from paymenter import rls
from paymenter.card_numbers import CardNumberNotAllowedError
from paymenter.errors import PaymenterError
from paymenter.models import OutboxMessage
from paymenter.money import Money
from tests.factories import make_customer, make_invoice
from tests.gateways.bank_transfer.helpers import (
    READER,
    UNKNOWN_NUMBER,
    audit_actions,
    invoice_now,
    principal_of,
    reference_of,
    side_effects,
    staff_user,
    statement_bytes,
    typo_of,
)

pytestmark = pytest.mark.django_db
MARCH_3 = date(2026, 3, 3)
MARCH_5 = date(2026, 3, 5)


@pytest.fixture
def billing() -> User:
    return staff_user("billing")


def _invoice(unit_minor: int = 10000) -> Invoice:
    return make_invoice(make_customer(), lines=[("Managed hosting, 1 month", 1, unit_minor)])


def _record(user: User, invoice: Invoice, minor: int, **overrides: Any) -> Payment:
    fields: dict[str, Any] = {
        "payment_reference": reference_print(reference_of(invoice)),
        "amount": Money(minor, invoice.currency),
        "received_on": MARCH_3,
        "bank_reference": f"CBA-{invoice.number}-{minor}",
        "user_id": user.pk,
    }
    fields.update(overrides)
    settlement = bank_transfer_record(principal=principal_of(user), **fields)
    assert settlement.created
    assert settlement.payment is not None
    return settlement.payment


def _outbox_types(invoice: Invoice) -> list[str]:
    with rls.acting_as(READER):
        return list(
            OutboxMessage.objects.filter(ordering_key=f"invoice:{invoice.id}", topic="o2s.callback")
            .order_by("id")
            .values_list("payload__type", flat=True)
        )


# --- by hand ------------------------------------------------------------------------------


def test_a_part_then_the_rest_pays_the_invoice_through_the_ledger(billing: User) -> None:
    invoice = _invoice()
    total = invoice.total_minor

    first = _record(billing, invoice, 5000)
    assert (first.status, first.gateway, first.method) == ("applied", "bank_transfer", "bank_transfer")
    assert invoice_now(invoice).amount_due_minor == total - 5000
    second = _record(billing, invoice, total - 5000, received_on=MARCH_5)

    assert second.status == "applied"
    after = invoice_now(invoice)
    assert (after.status, after.amount_paid_minor) == ("paid", total)
    assert _outbox_types(invoice) == ["payment.recorded", "invoice.paid"]
    actions = audit_actions(invoice.id)
    assert actions.count("bank_transfer.recorded") == 2
    assert actions[-2:] == ["invoice.paid", "bank_transfer.recorded"]
    with rls.acting_as(READER):
        line = BankStatementLine.objects.get(payment=first)
    assert (line.statement_id, line.status, line.booked_on, line.bank_reference) == (
        None,
        "recorded",
        MARCH_3,
        f"CBA-{invoice.number}-5000",
    )
    assert line.resolved_by_id == billing.pk


def test_more_than_is_due_is_recorded_held_for_staff(billing: User) -> None:
    invoice = _invoice()

    payment = _record(billing, invoice, invoice.total_minor + 100)

    assert (payment.status, payment.held_reason) == ("held", "overpayment")
    assert invoice_now(invoice).amount_paid_minor == 0
    assert audit_actions(invoice.id)[-2:] == ["payment.held", "bank_transfer.recorded"]


def test_another_currency_is_recorded_held(billing: User) -> None:
    invoice = _invoice()

    payment = _record(billing, invoice, 1000, amount=Money(1000, "USD"))

    assert (payment.status, payment.held_reason) == ("held", "currency_mismatch")


def test_the_same_transfer_recorded_twice_is_refused_and_nothing_is_written(billing: User) -> None:
    invoice = _invoice()
    _record(billing, invoice, 2500, bank_reference="CBA 0001")
    before = side_effects()

    with pytest.raises(BankTransferAlreadyRecordedError) as refused:
        _record(billing, invoice, 2500, bank_reference="  cba   0001 ")  # case and spacing do not make it new

    assert str(invoice.number) in refused.value.message
    assert side_effects() == before


def test_the_same_transfer_against_another_invoice_is_refused_too(billing: User) -> None:
    first, second = _invoice(), _invoice()
    _record(billing, first, 2500, bank_reference="CBA 0002")
    before = side_effects()

    with pytest.raises(BankTransferAlreadyRecordedError):
        _record(billing, second, 2500, bank_reference="CBA 0002")

    assert side_effects() == before


def test_a_similar_transfer_is_refused_until_staff_confirm_it_is_another(billing: User) -> None:
    invoice = _invoice()
    _record(billing, invoice, 2500, bank_reference="CBA 0003")
    before = side_effects()

    with pytest.raises(BankTransferPossibleDuplicateError):
        _record(billing, invoice, 2500, bank_reference="CBA 0004", received_on=MARCH_5)
    assert side_effects() == before

    payment = _record(billing, invoice, 2500, bank_reference="CBA 0004", received_on=MARCH_5, confirm_distinct=True)
    assert payment.status == "applied"
    assert invoice_now(invoice).amount_paid_minor == 5000


@pytest.mark.parametrize(
    ("reference", "error"),
    [
        ("INV-2026-000001", PaymentReferenceInvalidError),
        ("hello", PaymentReferenceInvalidError),
        ("typo", PaymentReferenceMistypedError),
        ("unknown", PaymentReferenceUnknownInvoiceError),
    ],
)
def test_a_reference_that_names_no_invoice_is_refused_and_nothing_is_written(
    billing: User, reference: str, error: type[PaymenterError]
) -> None:
    invoice = _invoice()
    typed = {
        "typo": reference_print(typo_of(reference_of(invoice))),
        "unknown": payment_reference_for(UNKNOWN_NUMBER),
    }.get(reference, reference)
    before = side_effects()

    with pytest.raises(error) as refused:
        _record(billing, invoice, 1000, payment_reference=typed)

    assert side_effects() == before
    assert invoice_now(invoice).amount_paid_minor == 0
    if reference == "typo":
        assert "mistyped" in refused.value.message


@pytest.mark.parametrize(("field", "value"), [("bank_reference", "   "), ("bank_reference", "x" * 256)])
def test_a_transfer_without_a_bank_reference_is_refused(billing: User, field: str, value: str) -> None:
    invoice = _invoice()
    before = side_effects()

    with pytest.raises(BankTransferInvalidError):
        _record(billing, invoice, 1000, **{field: value})

    assert side_effects() == before


def test_a_card_number_typed_as_the_bank_reference_is_refused_and_nothing_is_written(billing: User) -> None:
    invoice = _invoice()
    before = side_effects()

    with pytest.raises(CardNumberNotAllowedError):
        _record(billing, invoice, 1000, bank_reference="card 4111 1111 1111 1111")

    assert side_effects() == before


# --- from a statement -------------------------------------------------------------------------


def _statement_invoices(billing: User) -> tuple[Invoice, Invoice, Invoice]:
    a, b, c = _invoice(10000), _invoice(10000), _invoice(1000)  # 110.00, 110.00 and 11.00 with GST
    _record(billing, b, 5500, bank_reference="CBA RECEIPT 55")  # staff saw B's 55.00 first, on 3 March
    return a, b, c


def _line_statuses(statement_id: Any) -> list[tuple[str, int]]:
    with rls.acting_as(READER):
        return list(
            BankStatementLine.objects.filter(statement_id=statement_id)
            .order_by("booked_on", "amount_minor", "status")
            .values_list("status", "amount_minor")
        )


def test_the_fixture_statement_imported_twice_records_its_payments_once(billing: User) -> None:
    a, b, c = _statement_invoices(billing)
    content = statement_bytes(a=a, b=b, c=c)
    principal = principal_of(billing)

    report = bank_statement_import(
        principal=principal, file_name="CSVData.csv", content=content, layout="auto", user_id=billing.pk
    )

    assert (report.layout, report.lines_total, report.lines_new, report.lines_matched, report.debits_skipped) == (
        "commbank",
        8,
        8,
        3,
        1,
    )
    assert dict(report.statuses) == {
        "ambiguous": 1,
        "duplicate": 1,
        "matched": 3,
        "mistyped": 1,
        "unknown_invoice": 1,
        "unmatched": 1,
    }
    assert _line_statuses(report.statement_id) == [
        ("ambiguous", 500),
        ("unknown_invoice", 1234),
        ("mistyped", 2000),
        ("matched", 4000),
        ("matched", 4000),
        ("duplicate", 5500),
        ("unmatched", 12),
        ("matched", 2000),
    ]
    after_a, after_b, after_c = invoice_now(a), invoice_now(b), invoice_now(c)
    assert (after_a.status, after_a.amount_paid_minor) == ("open", 8000)  # two transfers of 40.00
    assert after_b.amount_paid_minor == 5500  # recorded once, by hand; the statement line is flagged
    with rls.acting_as(READER):
        held = Payment.objects.get(invoice=c)
        duplicate = BankStatementLine.objects.get(statement_id=report.statement_id, status="duplicate")
        typo = BankStatementLine.objects.get(statement_id=report.statement_id, status="mistyped")
    assert (held.status, held.held_reason, after_c.amount_paid_minor) == ("held", "overpayment", 0)
    assert (duplicate.invoice_id, duplicate.payment_id) == (b.id, None)
    assert "by hand" in duplicate.note
    assert typo.payment_reference == typo_of(reference_of(b))
    assert "TRANSFER FROM ACME PTY LTD" in typo.description
    assert audit_actions(report.statement_id) == ["bank_statement.imported"]

    before = side_effects()
    again = bank_statement_import(
        principal=principal, file_name="CSVData (1).csv", content=content, layout="commbank", user_id=billing.pk
    )

    assert (again.lines_total, again.lines_new, again.lines_matched, again.lines_already_imported) == (8, 0, 0, 8)
    after = side_effects()
    assert after["payments"] == before["payments"]
    assert after["lines"] == before["lines"]
    assert after["outbox"] == before["outbox"]
    assert (after["imports"], after["audit"]) == (before["imports"] + 1, before["audit"] + 1)  # the import itself
    assert invoice_now(a).amount_paid_minor == 8000
    with rls.acting_as(READER):
        second = BankStatementImport.objects.get(pk=again.statement_id)
    assert (second.lines_total, second.lines_new, second.lines_matched) == (8, 0, 0)


def test_a_garbage_statement_is_refused_and_nothing_is_written(billing: User) -> None:
    before = side_effects()

    with pytest.raises(BankStatementInvalidError):
        bank_statement_import(
            principal=principal_of(billing),
            file_name="photo.png",
            content=b"\x89PNG\r\n\x1a\n\x00\x00",
            layout="auto",
            user_id=billing.pk,
        )

    assert side_effects() == before


def test_recording_by_hand_what_a_statement_already_recorded_is_refused(billing: User) -> None:
    a, b, c = _invoice(10000), _invoice(10000), _invoice(1000)
    bank_statement_import(
        principal=principal_of(billing),
        file_name="statement.csv",
        content=statement_bytes(a=a, b=b, c=c),
        layout="commbank",
        user_id=billing.pk,
    )
    before = side_effects()

    with pytest.raises(BankTransferPossibleDuplicateError) as refused:
        _record(billing, a, 4000, received_on=MARCH_5, bank_reference="typed later")

    assert "from an earlier bank statement" in refused.value.message
    assert side_effects() == before


# --- staff resolve and ignore lines ---------------------------------------------------------------


def _imported(billing: User) -> tuple[tuple[Invoice, Invoice, Invoice], Any]:
    invoices = _statement_invoices(billing)
    a, b, c = invoices
    report = bank_statement_import(
        principal=principal_of(billing),
        file_name="statement.csv",
        content=statement_bytes(a=a, b=b, c=c),
        layout="commbank",
        user_id=billing.pk,
    )
    return invoices, report.statement_id


def _line(statement_id: Any, status: str) -> BankStatementLine:
    with rls.acting_as(READER):
        return BankStatementLine.objects.get(statement_id=statement_id, status=status)


def test_staff_resolve_a_mistyped_line_to_the_invoice_meant(billing: User) -> None:
    (_, b, _), statement_id = _imported(billing)
    typo = _line(statement_id, "mistyped")

    settlement = bank_statement_line_resolve(
        principal=principal_of(billing), line_id=typo.pk, invoice=b.number or "", user_id=billing.pk
    )

    assert settlement.payment is not None
    assert (settlement.payment.status, settlement.payment.transaction_id) == (
        "applied",
        f"bank-stmt:{typo.fingerprint}",
    )
    assert invoice_now(b).amount_paid_minor == 5500 + 2000
    with rls.acting_as(READER):
        resolved = BankStatementLine.objects.get(pk=typo.pk)
    assert (resolved.status, resolved.invoice_id, resolved.payment_id, resolved.resolved_by_id) == (
        "resolved",
        b.id,
        settlement.payment.id,
        billing.pk,
    )
    assert audit_actions(b.id)[-2:] == ["payment.recorded", "bank_statement.line_resolved"]

    before = side_effects()
    with pytest.raises(BankStatementLineNotOpenError):
        bank_statement_line_resolve(
            principal=principal_of(billing), line_id=typo.pk, invoice=b.number or "", user_id=billing.pk
        )
    assert side_effects() == before


def test_staff_resolve_an_ambiguous_line_by_payment_reference(billing: User) -> None:
    (a, _, _), statement_id = _imported(billing)
    ambiguous = _line(statement_id, "ambiguous")

    bank_statement_line_resolve(
        principal=principal_of(billing),
        line_id=ambiguous.pk,
        invoice=reference_print(reference_of(a)).lower(),
        user_id=billing.pk,
    )

    assert invoice_now(a).amount_paid_minor == 8000 + 500


@pytest.mark.parametrize("invoice", ["INV-2099-999999", "not a number", "typo"])
def test_resolving_to_no_invoice_is_refused_and_nothing_is_written(billing: User, invoice: str) -> None:
    (_, b, _), statement_id = _imported(billing)
    line = _line(statement_id, "unmatched")
    typed = reference_print(typo_of(reference_of(b))) if invoice == "typo" else invoice
    before = side_effects()

    with pytest.raises(PaymenterError):
        bank_statement_line_resolve(principal=principal_of(billing), line_id=line.pk, invoice=typed, user_id=billing.pk)

    assert side_effects() == before
    assert _line(statement_id, "unmatched").pk == line.pk


def test_a_duplicate_line_staff_confirm_was_recorded_is_ignored_and_audited(billing: User) -> None:
    (_, b, _), statement_id = _imported(billing)
    duplicate = _line(statement_id, "duplicate")
    matched = _line(statement_id, "unknown_invoice")

    changed = bank_statement_line_ignore(
        principal=principal_of(billing),
        line_ids=[duplicate.pk, matched.pk],
        user_id=billing.pk,
        reason="the transfer recorded by hand on 3 March",
    )

    assert changed == 2
    with rls.acting_as(READER):
        ignored = BankStatementLine.objects.get(pk=duplicate.pk)
    assert (ignored.status, ignored.note, ignored.resolved_by_id) == (
        "ignored",
        "the transfer recorded by hand on 3 March",
        billing.pk,
    )
    assert audit_actions(duplicate.pk) == ["bank_statement.line_ignored"]
    assert invoice_now(b).amount_paid_minor == 5500
    before = side_effects()
    assert bank_statement_line_ignore(principal=principal_of(billing), line_ids=[duplicate.pk], user_id=billing.pk) == 0
    assert side_effects() == before
    waiting = _line(statement_id, "mistyped")
    with pytest.raises(CardNumberNotAllowedError):  # a card number typed as the reason is never stored
        bank_statement_line_ignore(
            principal=principal_of(billing), line_ids=[waiting.pk], user_id=billing.pk, reason="4111111111111111"
        )
    assert side_effects() == before


def test_a_matched_line_cannot_be_ignored_or_resolved_again(billing: User) -> None:
    _, statement_id = _imported(billing)
    with rls.acting_as(READER):
        matched = BankStatementLine.objects.filter(statement_id=statement_id, status="matched").first()
    assert matched is not None
    before = side_effects()

    assert bank_statement_line_ignore(principal=principal_of(billing), line_ids=[matched.pk], user_id=billing.pk) == 0
    with pytest.raises(BankStatementLineNotOpenError):
        bank_statement_line_resolve(
            principal=principal_of(billing), line_id=matched.pk, invoice="anything", user_id=billing.pk
        )
    assert side_effects() == before
