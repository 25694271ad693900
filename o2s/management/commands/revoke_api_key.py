"""``manage.py revoke_api_key KEY``: stop a key from authenticating, at once.

KEY is the key's id, its lookup id, or its displayed form ``pmk_<lookup_id>…`` (as
``list_api_keys`` prints it). Revoking a revoked key changes nothing.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from o2s.errors import ApiKeyNotFoundError
from o2s.selectors import api_key_display
from o2s.services import api_key_revoke
from paymenter.principals import SystemPrincipal

PRINCIPAL = SystemPrincipal(label="command:revoke_api_key")


class Command(BaseCommand):
    help = "Revoke an API key (by id, lookup id or pmk_<lookup_id>…)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key", help="the key's id, lookup id or displayed form pmk_<lookup_id>…")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            api_key = api_key_revoke(principal=PRINCIPAL, lookup_id_or_id=options["key"])
        except ApiKeyNotFoundError as exc:
            raise CommandError("no such API key") from exc
        assert api_key.revoked_at is not None  # noqa: S101 - api_key_revoke guarantees it
        self.stdout.write(
            self.style.SUCCESS(
                f"API key {api_key.name!r} ({api_key_display(api_key)}, id {api_key.pk}) "
                f"revoked at {api_key.revoked_at.isoformat()}."
            )
        )
