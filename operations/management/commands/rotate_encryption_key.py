"""``manage.py rotate_encryption_key``: re-encrypt personal data under the primary key.

Safe to interrupt and to run again: rows already under the primary key are skipped.
See docs/encryption.md for the whole rotation procedure.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.services import customer_email_index_recompute
from operations.key_rotation import DEFAULT_BATCH_SIZE, encryption_rotate
from paymenter import encryption
from paymenter.principals import SystemPrincipal

PRINCIPAL = SystemPrincipal(label="command:rotate_encryption_key")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


class Command(BaseCommand):
    help = (
        "Re-encrypt every encrypted column under the primary key of FIELD_ENCRYPTION_KEYS, in batches; "
        "resumable. With --blind-index, recompute customer email indexes under BLIND_INDEX_KEY instead."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=_positive, default=DEFAULT_BATCH_SIZE, help="rows per transaction")
        parser.add_argument("--limit", type=_positive, default=None, help="stop after re-encrypting this many rows")
        parser.add_argument("--dry-run", action="store_true", help="count what would change; write nothing")
        parser.add_argument(
            "--blind-index", action="store_true", help="recompute Customer.email_index after BLIND_INDEX_KEY changed"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        batch_size: int = options["batch_size"]
        dry_run: bool = options["dry_run"]
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        if options["blind_index"]:
            index_report = customer_email_index_recompute(principal=PRINCIPAL, batch_size=batch_size, dry_run=dry_run)
            verb = "would recompute" if dry_run else "recomputed"
            self.stdout.write(
                f"email index: {verb} {index_report.rows_updated} of {index_report.rows_scanned} customers"
            )
            return
        try:
            report = encryption_rotate(
                principal=PRINCIPAL, batch_size=batch_size, limit=options["limit"], dry_run=dry_run
            )
        except encryption.DecryptionError as exc:
            raise CommandError(
                f"a value does not decrypt ({exc}); is every old key still in FIELD_ENCRYPTION_KEYS?"
            ) from exc
        verb = "would re-encrypt" if dry_run else "re-encrypted"
        for item in report.models:
            from_ids = ", ".join(item.from_key_ids) or "-"
            self.stdout.write(
                f"{item.model}: {verb} {item.rows_reencrypted} rows ({item.values_reencrypted} values)"
                f" from keys [{from_ids}]"
            )
        summary = f"{verb} {report.rows_reencrypted} rows under key {report.to_key_id}"
        if report.limit_reached:
            summary += "; stopped at --limit; run again to finish any remaining rows"
        self.stdout.write(self.style.SUCCESS(summary))
