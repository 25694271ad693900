"""Shared by the bank transfer tests: staff users, the fixture statement, side effects."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from django.contrib.auth.models import Group, User
from django.test import Client

from audit.models import AuditEvent
from gateways.bank_transfer.references import payment_reference_for, reference_print
from gateways.models import BankStatementImport, BankStatementLine, Payment
from invoices.models import Invoice, InvoiceChecksumMismatch
from paymenter import rls
from paymenter.models import OutboxMessage
from paymenter.principals import StaffPrincipal, SystemPrincipal

READER = SystemPrincipal(label="test:bank-transfer")
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "bank"
UNKNOWN_NUMBER = "INV-2099-999999"


def staff_user(role: str) -> User:
    user = User.objects.create_user(username=f"staff-{role}-{uuid.uuid4().hex[:8]}", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


def staff_client(role: str) -> tuple[Client, User]:
    user = staff_user(role)
    client = Client()
    client.force_login(user)
    return client, user


def principal_of(user: User) -> StaffPrincipal:
    return StaffPrincipal(user_id=int(user.pk), username=user.username)


def reference_of(invoice: Invoice) -> str:
    assert invoice.number
    return payment_reference_for(invoice.number)


def typo_of(reference: str) -> str:
    """One digit of the number changed (the last one): what a payer's slip looks like."""
    last = reference[-1]
    return reference[:-1] + str((int(last) + 1) % 10)


def statement_bytes(*, a: Invoice, b: Invoice, c: Invoice) -> bytes:
    """``tests/fixtures/bank/commbank_statement.csv`` with the references of ``a``, ``b``, ``c``."""
    text = (FIXTURES / "commbank_statement.csv").read_text()
    ref_a, ref_b, ref_c = reference_of(a), reference_of(b), reference_of(c)
    for placeholder, value in {
        "{REF_A}": ref_a,
        "{REF_B}": ref_b,
        "{REF_B_PRINTED}": reference_print(ref_b),
        "{REF_B_TYPO}": typo_of(ref_b),
        "{REF_C_PRINTED}": reference_print(ref_c),
        "{REF_UNKNOWN}": payment_reference_for(UNKNOWN_NUMBER),
    }.items():
        text = text.replace(placeholder, value)
    assert "{" not in text
    return text.encode()


def side_effects() -> dict[str, int]:
    """Everything a bank transfer service could write; a refusal leaves all of it as it was."""
    with rls.acting_as(READER):
        return {
            "payments": Payment.objects.count(),
            "audit": AuditEvent.objects.count(),
            "outbox": OutboxMessage.objects.count(),
            "lines": BankStatementLine.objects.count(),
            "imports": BankStatementImport.objects.count(),
            "mismatches": InvoiceChecksumMismatch.objects.count(),
        }


def invoice_now(invoice: Invoice) -> Invoice:
    with rls.acting_as(READER):
        return Invoice.objects.get(pk=invoice.pk)


def audit_actions(object_id: Any) -> list[str]:
    with rls.acting_as(READER):
        return list(
            AuditEvent.objects.filter(object_id=str(object_id)).order_by("sequence").values_list("action", flat=True)
        )
