"""paymenter.* system checks: unsafe settings and an over-privileged database role."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence

import pytest
from django.conf import settings
from django.core.checks import CheckMessage, run_checks
from django.db import connections
from django.test import override_settings

from paymenter.checks import (
    check_database_role,
    check_keys,
    check_payment_gateways,
    check_production_basics,
    database_role_messages,
)

STRONG_SECRET_KEY = secrets.token_urlsafe(64)
FIXED_KEY = base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def _key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def _strong_keys() -> dict[str, str]:
    return {
        "FIELD_ENCRYPTION_KEYS": f"k1:{_key()}",
        "AUDIT_HMAC_KEYS": f"k1:{_key()}",
        "INVOICE_CHECKSUM_KEYS": f"k1:{_key()}",
        "BLIND_INDEX_KEY": _key(),
    }


def _production(**overrides: object) -> override_settings:
    values: dict[str, object] = {
        "PRODUCTION": True,
        "DEBUG": False,
        "ALLOWED_HOSTS": ["billing.example.com"],
        "SECRET_KEY": STRONG_SECRET_KEY,
        **_strong_keys(),
    }
    values.update(overrides)
    return override_settings(**values)


def ids(messages: Sequence[CheckMessage]) -> list[str]:
    return sorted(str(message.id) for message in messages)


def test_development_settings_pass() -> None:
    assert check_production_basics() == []
    assert check_keys() == []


def test_strong_production_settings_pass() -> None:
    with _production():
        assert check_production_basics() == []
        assert check_keys() == []


def test_debug_in_production_is_an_error() -> None:
    with _production(DEBUG=True):
        assert ids(check_production_basics()) == ["paymenter.E001"]


def test_debug_in_development_is_allowed() -> None:
    with override_settings(DEBUG=True):
        assert check_production_basics() == []


def test_empty_allowed_hosts_in_production_is_an_error() -> None:
    with _production(ALLOWED_HOSTS=[]):
        assert ids(check_production_basics()) == ["paymenter.E002"]


def test_wildcard_allowed_hosts_in_production_is_a_warning() -> None:
    with _production(ALLOWED_HOSTS=["*"]):
        assert ids(check_production_basics()) == ["paymenter.W002"]


@pytest.mark.parametrize("secret_key", ["short-key", "a" * 80, "django-insecure-" + "x1y2z3w4v5" * 6])
def test_weak_secret_key_in_production_is_an_error(secret_key: str) -> None:
    with _production(SECRET_KEY=secret_key):
        assert ids(check_production_basics()) == ["paymenter.E003"]


def test_development_secret_key_in_production_is_an_error() -> None:
    with _production(SECRET_KEY=settings.DEV_DEFAULT_SECRETS["SECRET_KEY"]):
        assert ids(check_keys()) == ["paymenter.E006"]


@pytest.mark.parametrize("setting", ["FIELD_ENCRYPTION_KEYS", "AUDIT_HMAC_KEYS", "INVOICE_CHECKSUM_KEYS"])
@pytest.mark.parametrize(
    "value",
    [
        "",
        "k1:not*base64",
        "k1:" + base64.b64encode(b"sixteen-byte-key").decode(),
        FIXED_KEY,
        f"k1:{FIXED_KEY},k1:{FIXED_KEY}",
    ],
    ids=["empty", "not-base64", "too-short", "no-key-id", "duplicate-id"],
)
def test_malformed_keyring_is_an_error_in_any_mode(setting: str, value: str) -> None:
    with override_settings(**{setting: value}):
        messages = check_keys()

    assert ids(messages) == ["paymenter.E004"]
    assert setting in messages[0].msg
    material = value.rsplit(":", maxsplit=1)[-1]
    assert not material or material not in messages[0].msg  # never echoes key material


@pytest.mark.parametrize("value", ["", "not*base64", base64.b64encode(b"short").decode()])
def test_malformed_blind_index_key_is_an_error(value: str) -> None:
    with override_settings(BLIND_INDEX_KEY=value):
        assert ids(check_keys()) == ["paymenter.E005"]


@pytest.mark.parametrize(
    "setting", ["FIELD_ENCRYPTION_KEYS", "AUDIT_HMAC_KEYS", "INVOICE_CHECKSUM_KEYS", "BLIND_INDEX_KEY"]
)
def test_development_key_in_production_is_an_error(setting: str) -> None:
    dev_value = settings.DEV_DEFAULT_SECRETS[setting]
    # an operator copying the dev key under a new id is still caught (key material compared)
    value = dev_value if setting == "BLIND_INDEX_KEY" else f"prod1:{_key()},old:{dev_value.partition(':')[2]}"

    with _production(**{setting: value}):
        messages = check_keys()

    assert ids(messages) == ["paymenter.E006"]
    assert setting in messages[0].msg


def test_same_key_for_two_purposes_is_a_warning() -> None:
    shared = _key()
    with _production(AUDIT_HMAC_KEYS=f"a1:{shared}", INVOICE_CHECKSUM_KEYS=f"c1:{shared}"):
        messages = check_keys()

    assert ids(messages) == ["paymenter.W001"]
    assert messages[0].msg == "INVOICE_CHECKSUM_KEYS and AUDIT_HMAC_KEYS share key material."


def test_checks_are_registered() -> None:
    with _production(DEBUG=True):
        messages = run_checks(tags=["security"])

    assert "paymenter.E001" in ids(messages)


@pytest.mark.django_db(databases=["default", "owner"])
def test_app_role_passes_the_database_role_check() -> None:
    assert database_role_messages(connections["default"]) == []
    assert check_database_role(databases=["default"]) == []


@pytest.mark.django_db(databases=["default", "owner"])
def test_owner_role_fails_the_database_role_check() -> None:
    messages = database_role_messages(connections["owner"])

    assert ids(messages) == ["paymenter.E012"]
    assert "'paymenter_owner' owns (or can become the owner of) schema public" in messages[0].msg


def test_database_role_check_runs_only_for_the_default_alias() -> None:
    # ``migrate --database owner`` runs database checks for "owner": they must not refuse it
    assert check_database_role(databases=["owner"]) == []
    assert check_database_role(databases=None) == []


def test_stripe_without_a_webhook_secret_is_an_error() -> None:
    with override_settings(STRIPE_SECRET_KEY="sk_test_x", STRIPE_WEBHOOK_SECRETS=[]):
        assert ids(check_payment_gateways()) == ["paymenter.E020"]
    with override_settings(STRIPE_SECRET_KEY="sk_test_x", STRIPE_WEBHOOK_SECRETS=["whsec_x"]):
        assert check_payment_gateways() == []
    with override_settings(STRIPE_SECRET_KEY=""):
        assert check_payment_gateways() == []  # Stripe not enabled: nothing to check


def test_a_stripe_test_key_or_local_api_base_in_production_is_a_warning() -> None:
    live = {"STRIPE_SECRET_KEY": "rk_live_x", "STRIPE_WEBHOOK_SECRETS": ["whsec_x"]}
    with _production(**live, STRIPE_API_BASE="https://api.stripe.com"):
        assert check_payment_gateways() == []
    with _production(**{**live, "STRIPE_SECRET_KEY": "sk_test_x"}, STRIPE_API_BASE="https://api.stripe.com"):
        assert ids(check_payment_gateways()) == ["paymenter.W020"]
    with _production(**live, STRIPE_API_BASE="http://127.0.0.1:8421"):
        assert ids(check_payment_gateways()) == ["paymenter.W020"]


def test_paypal_half_configured_or_with_an_unknown_verification_mode_is_an_error() -> None:
    full = {"PAYPAL_CLIENT_ID": "id", "PAYPAL_CLIENT_SECRET": "secret", "PAYPAL_WEBHOOK_ID": "WH-1"}
    with override_settings(**full):
        assert check_payment_gateways() == []
    for missing in full:
        with override_settings(**{**full, missing: ""}):
            assert ids(check_payment_gateways()) == ["paymenter.E021"]
    with override_settings(**full, PAYPAL_WEBHOOK_VERIFICATION="trust-me"):
        assert ids(check_payment_gateways()) == ["paymenter.E022"]
    with _production(**full, PAYPAL_API_BASE="http://127.0.0.1:9"):
        assert ids(check_payment_gateways()) == ["paymenter.W021"]


def test_credit_notes_sharing_the_invoice_number_series_is_an_error() -> None:
    with override_settings(CREDIT_NOTE_NUMBER_PREFIX="INV", INVOICE_NUMBER_PREFIX="INV"):
        assert ids(check_payment_gateways()) == ["paymenter.E023"]


def test_bank_transfer_needs_an_invoice_prefix_a_payment_reference_can_carry() -> None:
    with override_settings(BANK_TRANSFER_ACCOUNT_NUMBER="12345678", INVOICE_NUMBER_PREFIX="INV"):
        assert check_payment_gateways() == []
    with override_settings(BANK_TRANSFER_ACCOUNT_NUMBER="12345678", INVOICE_NUMBER_PREFIX="INV-2"):
        assert ids(check_payment_gateways()) == ["paymenter.E024"]
    with override_settings(BANK_TRANSFER_ACCOUNT_NUMBER="", INVOICE_NUMBER_PREFIX="INV-2"):
        assert check_payment_gateways() == []
