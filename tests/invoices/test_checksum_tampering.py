"""Checksums catch tampering that bypasses the application (committed data)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections, transaction

from gateways.models import Payment
from invoices.errors import InvoiceChecksumMismatchError
from invoices.models import Invoice
from paymenter import rls
from paymenter.money import Money
from paymenter.principals import SystemPrincipal
from tests.factories import make_customer, make_invoice, pay_invoice


@pytest.mark.committed
def test_tampering_in_the_database_is_detected_by_the_command(committed_db: None, settings: Any) -> None:
    """Tamper as the owner would (triggers disabled): the checksum still catches it."""
    with rls.acting_as(SystemPrincipal(label="test:setup")):
        invoice = make_invoice(make_customer())
    owner = connections["owner"]
    with transaction.atomic(using="owner"), owner.cursor() as cursor:
        cursor.execute("SELECT set_config('paymenter.scope', 'system', true)")
        cursor.execute("ALTER TABLE invoices_invoice DISABLE TRIGGER invoices_guard_issued_invoice")
        cursor.execute(
            "UPDATE invoices_invoice SET subtotal_minor = 1, tax_minor = 0, total_minor = 1 WHERE id = %s", [invoice.id]
        )
        cursor.execute("ALTER TABLE invoices_invoice ENABLE TRIGGER invoices_guard_issued_invoice")
    owner.close()
    with pytest.raises(CommandError, match="mismatch"):
        call_command("verify_invoice_checksums")
    with pytest.raises(InvoiceChecksumMismatchError):
        pay_invoice(invoice, Money(1, "AUD"), f"pi_t-{invoice.id}", principal=SystemPrincipal(label="test"))
    with rls.acting_as(SystemPrincipal(label="test:check")):
        stored = Invoice.objects.get(id=invoice.id)
        assert (stored.status, stored.amount_paid_minor) == ("open", 0)
        assert not Payment.objects.filter(invoice_id=invoice.id).exists()
