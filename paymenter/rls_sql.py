"""The SQL that puts a table under row-level security: for the apps' migrations.

One policy per table, ``customer_isolation``, forced (the table owner is bound too); the
predicates are the functions of ``billing/migrations/0002`` (docs/row-level-security.md).
Migration code only: it must keep producing the same SQL, since applied migrations are
re-run from it on a fresh database.
"""

from __future__ import annotations


def protect(table: str, using: str, check: str | None = None) -> tuple[str, str]:
    """``(forward, backward)`` SQL: enable and force RLS on ``table`` with one policy whose
    ``USING`` is ``using`` and ``WITH CHECK`` is ``check`` (default: the same)."""
    check = check or using
    forward = f"""
    ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
    ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
    CREATE POLICY customer_isolation ON {table} USING ({using}) WITH CHECK ({check});
    """
    backward = f"""
    DROP POLICY customer_isolation ON {table};
    ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY;
    ALTER TABLE {table} DISABLE ROW LEVEL SECURITY;
    """
    return forward, backward
