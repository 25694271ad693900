"""System checks for settings that would be unsafe for a payment system.

Registered by ``PaymenterConfig.ready``; they run with every management command. The
production-only checks look at ``settings.PRODUCTION``. The database-role check is tagged
``database`` so it runs only when asked for (``manage.py check --database default``), and
it only ever inspects the ``default`` alias: ``migrate --database owner`` runs database
checks against the owner connection, which legitimately owns the tables.

Ids (listed in docs/operations.md):

* E001 DEBUG in production            * E002 ALLOWED_HOSTS empty in production
* E003 weak SECRET_KEY in production   * E004 keyring malformed or key too short
* E005 BLIND_INDEX_KEY malformed/short * E006 development secret used in production
* E010 app role is superuser           * E011 app role has BYPASSRLS
* E012 app role owns tables/schema     * E013 database role could not be inspected
* W001 one key used for two purposes   * W002 wildcard in ALLOWED_HOSTS in production
* W010 default database is not PostgreSQL (role not checked)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import Error as DatabaseError
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from paymenter.keyring import Keyring, KeyringError, decode_key_material

KEYRING_SETTINGS = ("FIELD_ENCRYPTION_KEYS", "AUDIT_HMAC_KEYS", "INVOICE_CHECKSUM_KEYS")
BLIND_INDEX_SETTING = "BLIND_INDEX_KEY"
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE_CHARACTERS = 5


def _production() -> bool:
    return bool(getattr(settings, "PRODUCTION", False))


def _key_materials(setting_name: str, value: str) -> list[bytes]:
    """Key material of one key setting; raises KeyringError if it is malformed."""
    if setting_name == BLIND_INDEX_SETTING:
        return [decode_key_material(value, name=setting_name)]
    return [material for _, material in Keyring.parse(setting_name, value).keys]


def _dev_materials() -> set[bytes]:
    materials: set[bytes] = set()
    for name, value in getattr(settings, "DEV_DEFAULT_SECRETS", {}).items():
        if name == "SECRET_KEY":
            continue
        try:
            materials.update(_key_materials(name, value))
        except KeyringError:
            continue
    return materials


@register(Tags.security)
def check_production_basics(*, app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    if not _production():
        return []
    messages: list[CheckMessage] = []
    if settings.DEBUG:
        messages.append(
            Error(
                "DEBUG is on in production.",
                hint="Unset DEBUG: debug pages leak settings, SQL and request data (card holders' too).",
                id="paymenter.E001",
            )
        )
    hosts = list(settings.ALLOWED_HOSTS)
    if not hosts:
        messages.append(Error("ALLOWED_HOSTS is empty in production.", hint="Set ALLOWED_HOSTS.", id="paymenter.E002"))
    elif "*" in hosts:
        messages.append(
            Warning(
                "ALLOWED_HOSTS accepts any host in production.",
                hint="List the real host names: a forged Host header can poison password-reset links.",
                id="paymenter.W002",
            )
        )
    secret_key = str(settings.SECRET_KEY)
    if (
        len(secret_key) < SECRET_KEY_MIN_LENGTH
        or len(set(secret_key)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS
        or secret_key.startswith("django-insecure-")
    ):
        messages.append(
            Error(
                f"SECRET_KEY is weak: use at least {SECRET_KEY_MIN_LENGTH} random characters.",
                hint="python -c 'import secrets; print(secrets.token_urlsafe(64))'",
                id="paymenter.E003",
            )
        )
    return messages


@register(Tags.security)
def check_keys(*, app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """Every key setting parses; production uses none of the public development keys."""
    messages: list[CheckMessage] = []
    owners: dict[bytes, str] = {}
    dev_materials = _dev_materials() if _production() else set()
    for setting_name in (*KEYRING_SETTINGS, BLIND_INDEX_SETTING):
        try:
            materials = _key_materials(setting_name, str(getattr(settings, setting_name, "")))
        except KeyringError as exc:  # the message names the setting and key id, never the key
            messages.append(
                Error(
                    str(exc),
                    hint="Base64 key material of at least 32 random bytes"
                    + ("." if setting_name == BLIND_INDEX_SETTING else ", as 'keyid:base64key,...'."),
                    id="paymenter.E005" if setting_name == BLIND_INDEX_SETTING else "paymenter.E004",
                )
            )
            continue
        if dev_materials.intersection(materials):
            messages.append(
                Error(
                    f"{setting_name} holds a public development key in production.",
                    hint="Generate a fresh key; see docs/operations.md.",
                    id="paymenter.E006",
                )
            )
        for material in materials:
            other = owners.setdefault(material, setting_name)
            if other != setting_name:
                messages.append(
                    Warning(
                        f"{setting_name} and {other} share key material.",
                        hint="Use a separate key per purpose, so one leaked key compromises one thing.",
                        id="paymenter.W001",
                    )
                )
    dev_secret_key = getattr(settings, "DEV_DEFAULT_SECRETS", {}).get("SECRET_KEY")
    if _production() and dev_secret_key is not None and dev_secret_key == settings.SECRET_KEY:
        messages.append(
            Error(
                "SECRET_KEY is the public development key in production.",
                hint="Generate a fresh SECRET_KEY.",
                id="paymenter.E006",
            )
        )
    return messages


_ROLE_SQL = """
SELECT r.rolname, r.rolsuper, r.rolbypassrls,
       EXISTS (
           SELECT 1 FROM pg_namespace n WHERE n.nspname = 'public'
           AND pg_has_role(current_user, n.nspowner, 'MEMBER')
       ) AS owns_schema,
       ARRAY(
           SELECT c.relname::text FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
           AND pg_has_role(current_user, c.relowner, 'MEMBER')
           ORDER BY c.relname LIMIT 5
       ) AS owned
FROM pg_roles r WHERE r.rolname = current_user
"""


def database_role_messages(connection: BaseDatabaseWrapper) -> list[CheckMessage]:
    """Refusals for a connection whose role could bypass row-level security or the audit rules.

    A superuser, a BYPASSRLS role and a table owner (without FORCE) all skip RLS policies;
    an owner can also ALTER/DROP the append-only audit tables. Membership in the owner
    role counts as ownership: such a role can ``SET ROLE`` to it.
    """
    if connection.vendor != "postgresql":
        return [
            Warning(
                f"Database {connection.alias!r} is not PostgreSQL; its role was not checked.",
                id="paymenter.W010",
            )
        ]
    try:
        with connection.cursor() as cursor:
            cursor.execute(_ROLE_SQL)
            row = cursor.fetchone()
    except DatabaseError as exc:
        return [
            Error(
                f"Could not inspect the role of database {connection.alias!r} ({type(exc).__name__}).",
                id="paymenter.E013",
            )
        ]
    if row is None:
        return [Error(f"The role of database {connection.alias!r} is not in pg_roles.", id="paymenter.E013")]
    role, superuser, bypass_rls, owns_schema, owned = row
    messages: list[CheckMessage] = []
    hint = "Connect the application as paymenter_app; see docs/row-level-security.md."
    if superuser:
        messages.append(
            Error(f"Database {connection.alias!r} connects as superuser {role!r}.", hint=hint, id="paymenter.E010")
        )
    if bypass_rls:
        messages.append(
            Error(f"Database {connection.alias!r} role {role!r} has BYPASSRLS.", hint=hint, id="paymenter.E011")
        )
    if owns_schema or owned:
        what = ", ".join(["schema public"] * bool(owns_schema) + list(owned))
        messages.append(
            Error(
                f"Database {connection.alias!r} role {role!r} owns (or can become the owner of) {what}.",
                hint=hint,
                id="paymenter.E012",
            )
        )
    return messages


@register(Tags.database)
def check_database_role(
    *, app_configs: Sequence[AppConfig] | None = None, databases: Sequence[str] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    if not databases or "default" not in databases:
        return []
    return database_role_messages(connections["default"])


@register(Tags.security)
def check_payment_gateways(*, app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """Stripe enabled without a webhook secret would refuse every webhook (and so rely on
    reconciliation alone); a test key or a non-Stripe API base in production takes no money.
    PayPal half configured, or without its webhook id, likewise; credit notes sharing the
    invoices' number series would leave gaps in both."""
    messages: list[CheckMessage] = [*_paypal_messages(), *_numbering_messages()]
    if not settings.STRIPE_SECRET_KEY:
        return messages
    if not settings.STRIPE_WEBHOOK_SECRETS:
        messages.append(
            Error(
                "STRIPE_SECRET_KEY is set but STRIPE_WEBHOOK_SECRETS is empty: every Stripe webhook would be refused.",
                hint="Set STRIPE_WEBHOOK_SECRETS to the endpoint's signing secret (whsec_...); see README.",
                id="paymenter.E020",
            )
        )
    if _production() and (
        settings.STRIPE_SECRET_KEY.startswith(("sk_test_", "rk_test_"))
        or not settings.STRIPE_API_BASE.startswith("https://")
    ):
        messages.append(
            Warning(
                "Stripe is configured with a test key or a non-HTTPS API base in production.",
                hint="Use a live restricted key (rk_live_...) and leave STRIPE_API_BASE at https://api.stripe.com.",
                id="paymenter.W020",
            )
        )
    return messages


def _paypal_messages() -> list[CheckMessage]:
    if not (settings.PAYPAL_CLIENT_ID or settings.PAYPAL_CLIENT_SECRET):
        return []
    messages: list[CheckMessage] = []
    if not (settings.PAYPAL_CLIENT_ID and settings.PAYPAL_CLIENT_SECRET and settings.PAYPAL_WEBHOOK_ID):
        messages.append(
            Error(
                "PayPal is half configured: PAYPAL_CLIENT_ID, PAYPAL_CLIENT_SECRET and PAYPAL_WEBHOOK_ID are all "
                "needed.",
                hint="Without PAYPAL_WEBHOOK_ID every PayPal webhook would be refused; see README.",
                id="paymenter.E021",
            )
        )
    if settings.PAYPAL_WEBHOOK_VERIFICATION not in ("offline", "api"):
        messages.append(Error("PAYPAL_WEBHOOK_VERIFICATION must be 'offline' or 'api'.", id="paymenter.E022"))
    if _production() and not settings.PAYPAL_API_BASE.startswith("https://"):
        messages.append(
            Warning(
                "PayPal is configured with a non-HTTPS API base in production.",
                hint="Leave PAYPAL_API_BASE at https://api-m.paypal.com.",
                id="paymenter.W021",
            )
        )
    return messages


def _numbering_messages() -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    if settings.CREDIT_NOTE_NUMBER_PREFIX == settings.INVOICE_NUMBER_PREFIX:
        messages.append(
            Error(
                "CREDIT_NOTE_NUMBER_PREFIX equals INVOICE_NUMBER_PREFIX: credit notes need their own number series.",
                id="paymenter.E023",
            )
        )
    if settings.BANK_TRANSFER_ACCOUNT_NUMBER and not re.fullmatch(r"[A-Z]{1,11}", settings.INVOICE_NUMBER_PREFIX):
        messages.append(
            Error(
                "With bank transfer, INVOICE_NUMBER_PREFIX must be 1-11 letters A-Z: the invoice number is "
                "carried in the ISO 11649 payment reference.",
                id="paymenter.E024",
            )
        )
    return messages
