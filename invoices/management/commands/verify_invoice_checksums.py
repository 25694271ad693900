"""Verify the checksum of every issued invoice and credit note; exit non-zero on any mismatch."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from invoices.services import invoices_verify_checksums
from paymenter import rls
from paymenter.principals import SystemPrincipal


class Command(BaseCommand):
    help = "Verify the HMAC checksum of every issued invoice and credit note (exit status 1 on any mismatch)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args: Any, **options: Any) -> None:
        principal = SystemPrincipal(label="command:verify_invoice_checksums")
        with rls.acting_as(principal):
            report = invoices_verify_checksums(principal=principal, batch_size=options["batch_size"])
        for invoice_id, number in report.mismatches:
            self.stderr.write(f"MISMATCH invoice {number} ({invoice_id})")
        for note_id, number in report.credit_note_mismatches:
            self.stderr.write(f"MISMATCH credit note {number} ({note_id})")
        summary = (
            f"checked {report.checked} issued invoices, {len(report.mismatches)} mismatches; "
            f"{report.credit_notes_checked} credit notes, {len(report.credit_note_mismatches)} mismatches"
        )
        if report.mismatches or report.credit_note_mismatches:
            raise CommandError(summary)
        self.stdout.write(self.style.SUCCESS(summary))
