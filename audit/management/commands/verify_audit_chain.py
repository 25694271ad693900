"""``manage.py verify_audit_chain``: exit 0 when the whole chain verifies, 1 naming the first bad row."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS

from audit.verification import DEFAULT_CHUNK_SIZE, verify_chain
from paymenter import rls
from paymenter.principals import SystemPrincipal

PRINCIPAL = SystemPrincipal(label="command:verify_audit_chain")


class Command(BaseCommand):
    help = "Verify every link and HMAC of the audit chain; exit non-zero on the first break."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="connection alias to read from")
        parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, help="rows per fetch")

    def handle(self, *args: Any, **options: Any) -> None:
        with rls.acting_as(PRINCIPAL):
            result = verify_chain(using=options["database"], chunk_size=options["chunk_size"])
        if not result.ok:
            raise CommandError(
                f"audit chain BROKEN at sequence {result.first_bad_sequence}: {result.reason} - {result.detail}"
                f" ({result.checked} rows verified before it)",
                returncode=1,
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"audit chain OK: {result.checked} rows verified; "
                f"head sequence {result.head_sequence}, head hash {result.head_hash}"
            )
        )
