"""``manage.py list_api_keys``: every API key with its status; no secret exists to print."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from billing.models import ApiKey
from o2s.selectors import api_key_display, api_keys_list
from paymenter.principals import SystemPrincipal

PRINCIPAL = SystemPrincipal(label="command:list_api_keys")


def _status(api_key: ApiKey, now: datetime) -> str:
    if api_key.revoked_at is not None:
        return "revoked"
    if api_key.expires_at is not None and api_key.expires_at <= now:
        return "expired"
    return "active"


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "-"


class Command(BaseCommand):
    help = "List API keys (id, name, public prefix, status, networks, limits, last use)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--active", action="store_true", help="only keys that can authenticate now")

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        shown = 0
        for api_key in api_keys_list(principal=PRINCIPAL):
            status = _status(api_key, now)
            if options["active"] and status != "active":
                continue
            shown += 1
            self.stdout.write(
                f"{api_key.pk}  {api_key_display(api_key)}  {status:<7}  {api_key.name}\n"
                f"    networks: {', '.join(api_key.allowed_networks)}; {api_key.rate_limit_per_minute}/min; "
                f"custom lines: {'yes' if api_key.can_invoice_custom_lines else 'no'}\n"
                f"    created {_when(api_key.created_at)}, expires {_when(api_key.expires_at)}, "
                f"revoked {_when(api_key.revoked_at)}, last used {_when(api_key.last_used_at)}"
            )
        if shown == 0:
            self.stdout.write("no API keys")
