"""The PostgreSQL roles Paymenter runs as, and the SQL that creates them.

* ``paymenter_owner`` owns the schema; migrations run as it (``DATABASE_OWNER_URL``).
* ``paymenter_app``   is what the application connects as (``DATABASE_URL``): LOGIN,
  NOSUPERUSER, NOBYPASSRLS, not the owner of anything. It gets DML on tables through
  default privileges; the audit migrations take UPDATE/DELETE/TRUNCATE back.

Run as a superuser (or a role with CREATEROLE): ``python -m paymenter.dbroles --database NAME``
prints the SQL for a DBA; the development launcher executes the same statements.
This module imports nothing from Django so it can run before settings exist.
"""

from __future__ import annotations

import argparse

OWNER_ROLE = "paymenter_owner"
APP_ROLE = "paymenter_app"


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def cluster_sql(*, owner_password: str | None = None, app_password: str | None = None) -> list[str]:
    """Statements run once per cluster (roles are cluster-wide); idempotent."""

    def role(name: str, attributes: str, password: str | None) -> str:
        pw = f" PASSWORD {_quote_literal(password)}" if password else ""
        return (
            "DO $$ BEGIN "  # noqa: S608 - role names are module constants, not input
            f"IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') THEN "
            f"CREATE ROLE {name} {attributes}{pw}; "
            f"ELSE ALTER ROLE {name} {attributes}{pw}; END IF; END $$"
        )

    return [
        role(OWNER_ROLE, "LOGIN NOSUPERUSER NOCREATEROLE NOBYPASSRLS NOREPLICATION CREATEDB", owner_password),
        role(APP_ROLE, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION INHERIT", app_password),
    ]


def database_sql(database: str) -> list[str]:
    """Statements run inside ``database`` (as a superuser) before the first migration."""
    return [
        f'ALTER DATABASE "{database}" OWNER TO {OWNER_ROLE}',
        f"ALTER SCHEMA public OWNER TO {OWNER_ROLE}",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        f'REVOKE ALL ON DATABASE "{database}" FROM PUBLIC',
        f'GRANT CONNECT, TEMPORARY ON DATABASE "{database}" TO {APP_ROLE}',
        f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER_ROLE} IN SCHEMA public "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER_ROLE} IN SCHEMA public "
        f"GRANT USAGE, SELECT ON SEQUENCES TO {APP_ROLE}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True)
    args = parser.parse_args()
    print("-- once per cluster (set passwords with ALTER ROLE ... PASSWORD afterwards)")
    for statement in cluster_sql():
        print(statement + ";")
    print(f'-- create the database if needed: CREATE DATABASE "{args.database}" OWNER {OWNER_ROLE};')
    print(f'-- then, connected to "{args.database}" as a superuser:')
    for statement in database_sql(args.database):
        print(statement + ";")


if __name__ == "__main__":
    main()
