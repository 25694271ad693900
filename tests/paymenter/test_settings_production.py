"""Production mode: refuses to start without its secrets; ``check --deploy`` is clean.

Each test runs a fresh interpreter (settings are read once per process) with an
environment built from scratch, so nothing leaks in from the developer's shell.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

REQUIRED_IN_PRODUCTION = (
    "SECRET_KEY",
    "FIELD_ENCRYPTION_KEYS",
    "AUDIT_HMAC_KEYS",
    "INVOICE_CHECKSUM_KEYS",
    "BLIND_INDEX_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "O2S_CALLBACK_SECRETS",
)


def _key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def production_env(**overrides: str | None) -> dict[str, str]:
    environ: dict[str, str | None] = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PAYMENTER_ENV": "production",
        "DJANGO_SETTINGS_MODULE": "paymenter.settings",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "FIELD_ENCRYPTION_KEYS": f"k1:{_key()}",
        "AUDIT_HMAC_KEYS": f"k1:{_key()}",
        "INVOICE_CHECKSUM_KEYS": f"k1:{_key()}",
        "BLIND_INDEX_KEY": _key(),
        "O2S_CALLBACK_SECRETS": secrets.token_urlsafe(32),
        "DATABASE_URL": os.environ["DATABASE_URL"],  # the test database, as paymenter_app
        "REDIS_URL": "redis://127.0.0.1:6379/15",
        "SELLER_ABN": "51 824 753 556",
        "ALLOWED_HOSTS": "billing.example.com",
    }
    environ.update(overrides)
    return {name: value for name, value in environ.items() if value is not None}


def run(args: list[str], environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, *args], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("missing", REQUIRED_IN_PRODUCTION)
def test_production_refuses_to_start_without_a_secret(missing: str) -> None:
    result = run(["-c", "import paymenter.settings"], production_env(**{missing: None}))

    assert result.returncode != 0
    assert f"ImproperlyConfiguredEnv: environment variable {missing} is required" in result.stderr


@pytest.mark.parametrize("missing", REQUIRED_IN_PRODUCTION)
def test_production_refuses_an_empty_secret(missing: str) -> None:
    result = run(["-c", "import paymenter.settings"], production_env(**{missing: ""}))

    assert result.returncode != 0
    assert f"environment variable {missing} is required" in result.stderr


def test_development_starts_without_any_secret() -> None:
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PAYMENTER_ENV": "development"}

    result = run(["-c", "import paymenter.settings as s; print(s.DEBUG, s.PRODUCTION)"], environ)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "False False\n"


def test_check_deploy_passes_in_production_with_strong_secrets() -> None:
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env())

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.django_db
def test_check_deploy_with_database_passes_as_the_app_role() -> None:
    result = run(
        ["manage.py", "check", "--deploy", "--database", "default", "--fail-level", "WARNING"], production_env()
    )

    assert result.returncode == 0, result.stderr


@pytest.mark.django_db
def test_check_with_database_fails_when_the_app_connects_as_the_owner() -> None:
    result = run(
        ["manage.py", "check", "--database", "default"],
        production_env(DATABASE_URL=os.environ["DATABASE_OWNER_URL"]),
    )

    assert result.returncode != 0
    assert "paymenter.E012" in result.stderr


def test_check_deploy_fails_with_debug_in_production() -> None:
    result = run(["manage.py", "check", "--deploy"], production_env(DEBUG="true"))

    assert result.returncode != 0
    assert "paymenter.E001" in result.stderr
    assert "security.W018" in result.stderr


def test_check_fails_when_production_is_given_a_development_key() -> None:
    dev_key = "dev1:ZGV2LW9ubHktYXVkaXQtY2hhaW4taG1hYy1rZXktMzI="

    result = run(["manage.py", "check"], production_env(AUDIT_HMAC_KEYS=dev_key))

    assert result.returncode != 0
    assert "paymenter.E006" in result.stderr
