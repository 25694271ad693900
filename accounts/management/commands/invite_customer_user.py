"""``manage.py invite_customer_user --customer <external id or id> --email <address>``.

Invites a person to one customer's portal (accounts/invitations.py): the user is made or
reused, granted that customer only, and mailed a link that sets the password.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.invitations import customer_user_invite
from billing.errors import BillingError
from billing.selectors import customer_get_by_external_id
from paymenter import rls
from paymenter.principals import SystemPrincipal

PRINCIPAL = SystemPrincipal(label="command:invite_customer_user")


class Command(BaseCommand):
    help = "Invite a person (by e-mail) to see and pay one customer's invoices."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--customer", required=True, help="the customer's O2S external id or Paymenter id")
        parser.add_argument("--email", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        reference: str = options["customer"]
        try:
            customer_id: uuid.UUID | str = uuid.UUID(reference)
        except ValueError:
            try:
                with rls.acting_as(PRINCIPAL):
                    customer_id = customer_get_by_external_id(principal=PRINCIPAL, external_id=reference).id
            except BillingError as exc:
                raise CommandError(f"no customer {reference!r}") from exc
        try:
            user = customer_user_invite(principal=PRINCIPAL, customer_id=customer_id, email=options["email"])
        except BillingError as exc:
            raise CommandError(f"{exc.code}: {exc.message} {exc.fields}") from exc
        self.stdout.write(f"invited {user.email} (user {user.pk}) to customer {customer_id}")
