"""Bank transfers under real concurrency, on committed data: two staff recording the same
transfer at once record it once; two imports of one statement at once store and record
its lines once; a tampered invoice is refused, and what the ledger recorded about the
tampering survives the refusal. Objects are unique per test (committed data stays)."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest
from django.contrib.auth.models import User
from django.db import connection

from gateways.bank_transfer.errors import BankTransferAlreadyRecordedError
from gateways.bank_transfer.references import reference_print
from gateways.models import BankStatementLine, Payment
from gateways.services.bank_transfers import bank_statement_import, bank_transfer_record
from invoices.errors import InvoiceChecksumMismatchError
from invoices.models import Invoice, InvoiceChecksumMismatch
from paymenter import rls
from paymenter.money import Money
from tests.factories import make_customer, make_invoice
from tests.gateways.bank_transfer.helpers import READER, audit_actions, principal_of, reference_of, staff_user
from tests.invoices.tampering import tamper_totals

pytestmark = pytest.mark.committed
RACERS = 4


def _invoice() -> Invoice:
    return make_invoice(make_customer(), lines=[("Managed hosting, 1 month", 1, 10000)])


def _payments(invoice: Invoice) -> list[tuple[str, int]]:
    with rls.acting_as(READER):
        return list(Payment.objects.filter(invoice=invoice).values_list("status", "amount_minor"))


def test_staff_recording_one_transfer_at_once_record_it_once(committed_db: None) -> None:
    invoice = _invoice()
    users = [staff_user("billing") for _ in range(RACERS)]
    start = threading.Barrier(RACERS)
    bank_reference = f"CBA {uuid.uuid4().hex[:10]}"

    def record(user: User) -> str:
        start.wait()
        try:
            bank_transfer_record(
                principal=principal_of(user),
                payment_reference=reference_print(reference_of(invoice)),
                amount=Money(5000, "AUD"),
                received_on=date(2026, 3, 3),
                bank_reference=bank_reference,
                user_id=user.pk,
            )
        except BankTransferAlreadyRecordedError:
            return "refused"
        finally:
            connection.close()
        return "recorded"

    with ThreadPoolExecutor(RACERS) as pool:
        outcomes = sorted(pool.map(record, users))

    assert outcomes == ["recorded"] + ["refused"] * (RACERS - 1)
    assert _payments(invoice) == [("applied", 5000)]
    assert audit_actions(invoice.id).count("bank_transfer.recorded") == 1


def test_two_imports_of_one_statement_at_once_record_its_lines_once(committed_db: None) -> None:
    invoices = [_invoice(), _invoice()]
    users = [staff_user("billing"), staff_user("billing")]
    tag = uuid.uuid4().hex[:12]
    rows = [
        f"2026-03-05,40.00,AUD,TRANSFER {tag} {reference_of(invoice)},FT{tag}{n}" for n, invoice in enumerate(invoices)
    ]
    content = ("date,amount,currency,description,bank_reference\n" + "\n".join(rows) + "\n").encode()
    start = threading.Barrier(2)

    def run(user: User) -> int:
        start.wait()
        try:
            return bank_statement_import(
                principal=principal_of(user), file_name="race.csv", content=content, layout="auto", user_id=user.pk
            ).lines_new
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        stored = sorted(pool.map(run, users))

    assert stored == [0, 2]
    for invoice in invoices:
        assert _payments(invoice) == [("applied", 4000)]
    with rls.acting_as(READER):
        assert BankStatementLine.objects.filter(description__isnull=False, invoice__in=invoices).count() == 2


def test_a_tampered_invoice_is_refused_and_the_tampering_stays_recorded(committed_db: None) -> None:
    invoice = _invoice()
    user = staff_user("billing")
    reference = reference_print(reference_of(invoice))
    tamper_totals(invoice.id, total_minor=1)

    with pytest.raises(InvoiceChecksumMismatchError):
        bank_transfer_record(
            principal=principal_of(user),
            payment_reference=reference,
            amount=Money(5000, "AUD"),
            received_on=date(2026, 3, 3),
            bank_reference=f"CBA {uuid.uuid4().hex[:10]}",
            user_id=user.pk,
        )

    assert _payments(invoice) == []
    actions = audit_actions(invoice.id)
    assert "invoice.checksum_mismatch" in actions
    assert "bank_transfer.recorded" not in actions
    with rls.acting_as(READER):
        assert InvoiceChecksumMismatch.objects.filter(invoice=invoice).count() == 1
        assert not BankStatementLine.objects.filter(invoice=invoice).exists()
