"""The development tooling: role URLs, role attributes, and the embedded-services path."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from devtools.embedded import socket_url, start_postgres, start_redis
from devtools.provision import database_name, provision_database, redis_url_for_tests, url_with
from paymenter import dbroles


def test_url_with_replaces_credentials_and_database() -> None:
    admin = "postgres://postgres:s3cret@db.example:6543/postgres?sslmode=require"

    derived = url_with(admin, user="paymenter_app", password="p@ss/word", database="paymenter")

    assert derived == "postgres://paymenter_app:p%40ss%2Fword@db.example:6543/paymenter?sslmode=require"


def test_url_with_drops_the_admin_password_when_none_is_given() -> None:
    derived = url_with("postgres://postgres:s3cret@127.0.0.1:5432/postgres", user="paymenter_owner")

    assert derived == "postgres://paymenter_owner@127.0.0.1:5432/postgres"


def test_socket_url_moves_the_socket_directory_into_the_host() -> None:
    uri = "postgresql://postgres:@/postgres?host=/work/main/.data/postgres"

    assert socket_url(uri) == "postgres://postgres@%2Fwork%2Fmain%2F.data%2Fpostgres/postgres"


@pytest.mark.parametrize(
    ("admin_url", "test", "expected"),
    [
        ("postgres://postgres@127.0.0.1:5432/postgres", False, "paymenter"),
        ("postgres://postgres@127.0.0.1:5432/postgres", True, "test_paymenter"),
        ("postgres://postgres@127.0.0.1:5432", False, "paymenter"),
        ("postgres://postgres@127.0.0.1:5432/billing", True, "test_billing"),
    ],
)
def test_database_name(admin_url: str, test: bool, expected: str) -> None:
    assert database_name(admin_url, test=test) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379/15"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/15"),
        ("redis://127.0.0.1:6379/7", "redis://127.0.0.1:6379/7"),
        ("unix:///tmp/redis.socket", "unix:///tmp/redis.socket"),
    ],
)
def test_tests_never_use_redis_database_zero(url: str, expected: str) -> None:
    assert redis_url_for_tests(url) == expected


def test_the_test_session_runs_as_the_restricted_app_role() -> None:
    """The suite connects as ``paymenter_app``: no superuser, no BYPASSRLS, owns nothing."""
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT current_user, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb"
            " FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        owned = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = current_user"
        ).fetchone()
        owns_database = conn.execute(
            "SELECT pg_get_userbyid(datdba) = current_user FROM pg_database WHERE datname = current_database()"
        ).fetchone()

    assert row == (dbroles.APP_ROLE, False, False, False, False)
    assert owned == (0,)
    assert owns_database == (False,)


def test_embedded_servers_start_and_provision_with_passwords(tmp_path: Path) -> None:
    """Given an embedded cluster that demands passwords from our roles, provisioning sets
    random ones, keeps them private, and the derived URLs log in; the app role cannot DDL."""
    started = time.monotonic()
    postgres = start_postgres(tmp_path / "postgres")
    redis = start_redis(tmp_path / "redis")
    try:
        with psycopg.connect(postgres.admin_url, autocommit=True) as admin:
            hba = admin.execute("SHOW hba_file").fetchone()
            assert hba is not None
            Path(hba[0]).write_text("local all postgres trust\nlocal all all scram-sha-256\n")
            admin.execute("SELECT pg_reload_conf()")
        passwords_file = tmp_path / "role-passwords.json"

        provisioned = provision_database(postgres.admin_url, "paymenter", recreate=True, passwords_file=passwords_file)

        with psycopg.connect(provisioned.owner_url, autocommit=True) as owner:
            owner.execute("CREATE TABLE probe (id int)")
        with psycopg.connect(provisioned.app_url, autocommit=True) as app:
            assert app.execute("SELECT current_user").fetchone() == (dbroles.APP_ROLE,)
            app.execute("INSERT INTO probe VALUES (1)")  # default privileges grant DML
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute("CREATE TABLE intruder (id int)")
        stored = json.loads(passwords_file.read_text())
        assert stat.S_IMODE(passwords_file.stat().st_mode) == 0o600
        assert next(iter(stored.values()))[dbroles.APP_ROLE] in provisioned.app_url
        assert redis._client.ping() is True
        assert redis.url.startswith("unix:///")
    finally:
        redis.stop(persist=False)
        postgres.stop()
    assert time.monotonic() - started < 30


def test_compose_role_sql_matches_dbroles() -> None:
    """deploy/postgres/10-paymenter-roles.sql is what ``make deploy-sql`` writes today."""
    expected = subprocess.run(
        [sys.executable, "-m", "paymenter.dbroles", "--database", "paymenter"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    committed = (Path(__file__).resolve().parents[2] / "deploy/postgres/10-paymenter-roles.sql").read_text()

    assert committed == expected, "run `make deploy-sql` to regenerate the compose role SQL"
