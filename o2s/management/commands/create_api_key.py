"""``manage.py create_api_key``: a new O2S API key, printed once (docs/api-keys.md).

The key is written to stdout on its own last line, so ``... | tail -n1`` captures it;
it is not stored (only its hash is) and cannot be shown again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from o2s.errors import InvalidApiKeySpecError
from o2s.selectors import api_key_display
from o2s.services import api_key_create
from paymenter.principals import SystemPrincipal

PRINCIPAL = SystemPrincipal(label="command:create_api_key")


def positive_integer(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


class Command(BaseCommand):
    help = "Create an API key for O2S and print it once. Only its hash is stored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="what the key is for, e.g. o2s-production-2026")
        parser.add_argument(
            "--allow-ip",
            action="append",
            required=True,
            metavar="CIDR",
            help="a network the key may be used from (repeat for several), e.g. 10.20.0.0/16",
        )
        parser.add_argument("--expires-in-days", type=positive_integer, default=None, help="default: never expires")
        parser.add_argument(
            "--allow-custom-lines",
            action="store_true",
            help="may invoice lines with an explicit unit amount (audited)",
        )
        parser.add_argument("--rate-limit", type=positive_integer, default=600, help="requests per minute; default 600")

    def handle(self, *args: Any, **options: Any) -> None:
        days: int | None = options["expires_in_days"]
        expires_at = timezone.now() + timedelta(days=days) if days else None
        try:
            api_key, raw = api_key_create(
                principal=PRINCIPAL,
                name=options["name"],
                allowed_networks=options["allow_ip"],
                expires_at=expires_at,
                can_invoice_custom_lines=options["allow_custom_lines"],
                rate_limit_per_minute=options["rate_limit"],
            )
        except InvalidApiKeySpecError as exc:
            problems = "; ".join(f"{field}: {', '.join(messages)}" for field, messages in exc.fields.items())
            raise CommandError(f"API key not created: {problems}") from exc
        expiry = api_key.expires_at.isoformat() if api_key.expires_at else "never"
        self.stdout.write(
            f"Created API key {api_key.name!r}: id {api_key.pk}, {api_key_display(api_key)}, "
            f"networks {', '.join(api_key.allowed_networks)}, expires {expiry}, "
            f"{api_key.rate_limit_per_minute}/min, custom lines {'yes' if api_key.can_invoice_custom_lines else 'no'}."
        )
        self.stdout.write(self.style.WARNING("Store this key now; it cannot be shown again:"))
        self.stdout.write(raw)
