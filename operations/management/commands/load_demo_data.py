"""``manage.py load_demo_data``: the data set ``make run`` starts with.

Creates one staff user per role (``admin``, ``billing``, ``support``: ``is_staff`` plus the
group of that name from migration ``billing.0003_staff_groups``), two customers (one in
Australia - GST, one in the USA - GST-free export) each with a portal login, invoices
in the states draft, open, paid and void, a small product catalogue priced in AUD and USD,
and an O2S API key that works from this machine only (127.0.0.1, ::1) so the REST API can
be tried at once. Everything customer-related goes through the
services, so encryption, pricing, checksums and audit records are the real ones.

The demo ``admin`` is deliberately **not** a superuser: a superuser passes every
permission check, so the demo would not show what the admin group may and may not do
(e.g. nobody deletes an invoice). The admin group holds every permission of our apps and
of user management, which is all the admin needs.

Idempotent: each object is created only when missing, and a password is generated and
printed only for a user created by this run (stored as a hash only, never shown again;
reset with ``manage.py changepassword <username>``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from allauth.account.models import EmailAddress
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError

from billing.errors import DuplicateCustomerError
from billing.models import ApiKey, Customer, Product, ProductPrice
from billing.services import customer_create, customer_grant_access
from gateways.base import GatewayCode, PaymentMethod
from gateways.services import payment_receive
from invoices.models import Invoice
from invoices.pricing import InvoiceLineInput
from invoices.services import invoice_create, invoice_void
from o2s.services import api_key_create
from paymenter import rls
from paymenter.money import Money
from paymenter.principals import SystemPrincipal

PRINCIPAL = SystemPrincipal(label="command:load_demo_data")
DEMO_EXTERNAL_ID_PREFIX = "demo-"
STAFF_ROLES = ("admin", "billing", "support")
DEMO_EMAIL_DOMAIN = "demo.paymenter.example"  # the demo users' logins: <username>@ this


@dataclass(frozen=True)
class DemoInvoice:
    state: str  # draft | open | paid | void
    lines: tuple[tuple[str, int, int], ...]  # (description, quantity, unit amount in minor units)


@dataclass(frozen=True)
class DemoCustomer:
    external_id: str
    billing_country: str
    currency: str
    name: str
    email: str
    phone: str
    tax_id: str | None
    postal_address: dict[str, str]
    portal_username: str
    invoices: tuple[DemoInvoice, ...]


DEMO_CUSTOMERS = (
    DemoCustomer(
        external_id=f"{DEMO_EXTERNAL_ID_PREFIX}au-1",
        billing_country="AU",
        currency="AUD",
        name="Salamanca Web Studio Pty Ltd",
        email="accounts@salamanca-web.example",
        phone="+61 3 6200 0000",
        tax_id="53 004 085 616",
        postal_address={
            "line1": "12 Salamanca Place",
            "city": "Hobart",
            "region": "TAS",
            "postcode": "7000",
            "country": "AU",
        },
        portal_username="customer-au",
        invoices=(
            DemoInvoice("paid", (("VPS small, 1 month", 1, 2000), ("Backup storage 50 GB", 2, 450))),
            DemoInvoice("open", (("VPS small, 1 month", 1, 2000), ("Managed DNS", 1, 500))),
            DemoInvoice("draft", (("VPS medium, 1 month", 1, 4000),)),
        ),
    ),
    DemoCustomer(
        external_id=f"{DEMO_EXTERNAL_ID_PREFIX}us-1",
        billing_country="US",
        currency="USD",
        name="Cascade Apps LLC",
        email="billing@cascade-apps.example",
        phone="+1 503 555 0100",
        tax_id=None,
        postal_address={
            "line1": "100 SW Main St",
            "city": "Portland",
            "region": "OR",
            "postcode": "97204",
            "country": "US",
        },
        portal_username="customer-us",
        invoices=(
            DemoInvoice("void", (("Dedicated server, 1 month", 1, 15000),)),
            DemoInvoice("open", (("Dedicated server, 1 month", 1, 15000), ("Extra IPv4 address", 4, 300))),
        ),
    ),
)


# (code, description, {currency: GST-exclusive unit price in minor units})
DEMO_PRODUCTS: tuple[tuple[str, str, dict[str, int]], ...] = (
    ("vps-small", "VPS small (2 vCPU, 4 GB), 1 month", {"AUD": 2000, "USD": 1400}),
    ("vps-medium", "VPS medium (4 vCPU, 8 GB), 1 month", {"AUD": 4000, "USD": 2800}),
    ("backup-50gb", "Backup storage 50 GB, 1 month", {"AUD": 450, "USD": 300}),
    ("ipv4-address", "Extra IPv4 address, 1 month", {"AUD": 300, "USD": 200}),
)
DEMO_API_KEY_NAME = "demo-o2s"
DEMO_API_KEY_NETWORKS = ["127.0.0.1/32", "::1/128"]


@dataclass(frozen=True)
class Login:
    username: str
    password: str
    role: str


def _new_password() -> str:
    return secrets.token_urlsafe(12)


class Command(BaseCommand):
    help = "Load the demo data set (staff per role, two customers with invoices); prints new logins once."

    def handle(self, *args: Any, **options: Any) -> None:
        with rls.acting_as(PRINCIPAL):
            logins = [self._staff_user(role) for role in STAFF_ROLES]
            for demo in DEMO_CUSTOMERS:
                logins.extend(self._customer(demo))
            self._products()
            api_key = self._api_key()
        created = [login for login in logins if login is not None]
        if api_key is not None:
            self.stdout.write(
                self.style.SUCCESS("O2S API key (shown ONCE; works from 127.0.0.1 and ::1 only):")
                + f"\n  Authorization: Bearer {api_key}"
                + f"\n  products: {', '.join(code for code, _, _ in DEMO_PRODUCTS)}; try GET /api/v1/invoices/"
            )
        if not created:
            self.stdout.write(
                "Demo data already exists; nothing created. Logins were printed when it was first loaded "
                "(reset one with: manage.py changepassword <username>)."
            )
            return
        self._print_logins(created)

    def _staff_user(self, role: str) -> Login | None:
        try:
            group = Group.objects.get(name=role)
        except Group.DoesNotExist as exc:
            raise CommandError(f"group {role!r} is missing: run manage.py migrate first") from exc
        user, created = self._user(username=role, is_staff=True)
        if not created:
            return None
        user.groups.add(group)
        return Login(username=role, password=self._set_password(user), role=f"staff: {role}")

    def _customer(self, demo: DemoCustomer) -> list[Login | None]:
        try:
            customer = customer_create(
                principal=PRINCIPAL,
                external_id=demo.external_id,
                billing_country=demo.billing_country,
                name=demo.name,
                email=demo.email,
                phone=demo.phone,
                postal_address=demo.postal_address,
                tax_id=demo.tax_id,
            )
        except DuplicateCustomerError:
            return []  # loaded by an earlier run, with its portal user and invoices
        user, created = self._user(username=demo.portal_username, is_staff=False)
        login = (
            Login(username=user.get_username(), password=self._set_password(user), role=f"customer {demo.external_id}")
            if created
            else None
        )
        customer_grant_access(principal=PRINCIPAL, customer_id=customer.id, user=user)
        for invoice in demo.invoices:
            self._invoice(customer, demo.currency, invoice)
        return [login]

    @staticmethod
    def _products() -> None:
        """Catalogue rows are admin-managed data (no service); created only when missing."""
        for code, description, prices in DEMO_PRODUCTS:
            product, _ = Product.objects.get_or_create(code=code, defaults={"description": description})
            for currency, unit_amount_minor in prices.items():
                ProductPrice.objects.get_or_create(
                    product=product, currency=currency, defaults={"unit_amount_minor": unit_amount_minor}
                )

    @staticmethod
    def _api_key() -> str | None:
        if ApiKey.objects.filter(name=DEMO_API_KEY_NAME).exists():
            return None
        _, raw_key = api_key_create(principal=PRINCIPAL, name=DEMO_API_KEY_NAME, allowed_networks=DEMO_API_KEY_NETWORKS)
        return raw_key

    def _invoice(self, customer: Customer, currency: str, demo: DemoInvoice) -> Invoice:
        invoice = invoice_create(
            principal=PRINCIPAL,
            customer=customer,
            currency=currency,
            lines=[InvoiceLineInput(description=d, quantity=q, unit_amount_minor=u) for d, q, u in demo.lines],
            issue=demo.state != "draft",
        )
        if demo.state == "paid":
            payment_receive(
                principal=PRINCIPAL,
                invoice_id=invoice.id,
                amount=Money(invoice.amount_due_minor, invoice.currency),
                gateway=GatewayCode.BANK_TRANSFER,
                transaction_id=f"demo-{invoice.number}",
                method=PaymentMethod.BANK_TRANSFER,
                recorded_by="demo data",
            )
            invoice.refresh_from_db()
        elif demo.state == "void":
            invoice = invoice_void(principal=PRINCIPAL, invoice_id=invoice.id, reason="demo: order cancelled")
        return invoice

    def _user(self, *, username: str, is_staff: bool) -> tuple[User, bool]:
        user, created = User.objects.get_or_create(
            username=username, defaults={"is_staff": is_staff, "email": f"{username}@{DEMO_EMAIL_DOMAIN}"}
        )
        # the login is the e-mail address, verified (docs/portal.md): the demo has no mailbox
        EmailAddress.objects.get_or_create(user=user, email=user.email, defaults={"verified": True, "primary": True})
        return user, created

    @staticmethod
    def _set_password(user: User) -> str:
        password = _new_password()
        user.set_password(password)
        user.save(update_fields=["password"])
        return password

    def _print_logins(self, logins: list[Login]) -> None:
        width = max(len(login.username) for login in logins)
        pwidth = max(len(login.password) for login in logins)
        self.stdout.write(self.style.SUCCESS("Demo data loaded. These logins are shown ONCE (only hashes are stored):"))
        self.stdout.write(f"  {'username':<{width}}  {'password':<{pwidth}}  role")
        for login in logins:
            self.stdout.write(f"  {login.username:<{width}}  {login.password:<{pwidth}}  {login.role}")
        self.stdout.write(
            f"Log in at /accounts/login/ with <username>@{DEMO_EMAIL_DOMAIN}; "
            "staff set up an authenticator app (TOTP) before the admin at /admin/ opens."
        )
