"""Seed PayPal's webhook signing certificate cache from a PEM file, for one certificate URL.

For installs that may not reach paypal.com (air-gapped, egress-filtered), for pinning a
certificate ahead of its first delivery, and for tests. The URL must be one PayPal could
name (https on a paypal.com host: the same rule as a delivery's ``PAYPAL-CERT-URL``), and
the PEM (the leaf, then its intermediates) must pass the same checks as a fetched one:
chain to ``PAYPAL_WEBHOOK_CA_FILE`` (or certifi), within its validity period, issued to a
paypal.com name. Seeding a URL again replaces its certificate.

    manage.py paypal_certificate_seed --url https://api.paypal.com/v1/notifications/certs/CERT-... --pem cert.pem
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateways.base import WebhookRejectedError
from gateways.paypal.certificates import paypal_certificate_seed


class Command(BaseCommand):
    help = "Store a PayPal webhook signing certificate (PEM: leaf, then intermediates) for its PAYPAL-CERT-URL."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", required=True, help="the PAYPAL-CERT-URL the deliveries name")
        parser.add_argument("--pem", required=True, type=Path, help="a PEM file: the leaf, then its intermediates")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["pem"])  # call_command(pem="...") skips argparse's type
        try:
            pem = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {path}: {exc}") from None
        try:
            seeded = paypal_certificate_seed(url=options["url"], pem=pem)
        except WebhookRejectedError as exc:
            raise CommandError(f"{exc.reason.value}: {exc.message}") from None
        subject = seeded.leaf.subject.rfc4514_string()
        self.stdout.write(self.style.SUCCESS(f"seeded {seeded.url} ({subject}, valid until {seeded.not_after})"))
