"""Django's PostgreSQL backend plus the row-level security scope (see ``paymenter.rls``).

* Entering ``transaction.atomic`` (autocommit off) writes the current scope with
  ``set_config(..., true)`` as the transaction's first statement, sent with the ``BEGIN``
  that opens it: one round trip where psycopg would send ``BEGIN`` on its own first
  (docs/performance.md). The driver connection stays in autocommit mode for that; psycopg
  sends no ``BEGIN`` of its own then, and its ``commit()`` and ``rollback()`` follow the
  server's transaction status, not that mode.
* A query run in autocommit mode is wrapped in its own short transaction so that it
  carries the scope as well; with no principal it simply runs unscoped and the
  policies hide every customer row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.db.backends.postgresql import base
from django.db.backends.postgresql.base import TIMESTAMPTZ_OID, ServerSideCursor
from django.db.backends.postgresql.psycopg_any import register_tzloader
from psycopg.pq import Format

from paymenter import rls


class DatabaseWrapper(base.DatabaseWrapper):
    applies_rls_scope = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.execute_wrappers.append(self._scope_autocommit_query)

    #: ``_set_autocommit(False)`` left the driver in autocommit: ``set_autocommit`` sends BEGIN
    _begin_with_scope = False

    def _set_autocommit(self, autocommit: bool) -> None:
        self._begin_with_scope = not autocommit and self._can_begin_with_scope()
        if not self._begin_with_scope:
            super()._set_autocommit(autocommit)  # type: ignore[misc] # a private method the stubs omit

    def _can_begin_with_scope(self) -> bool:
        """A plain ``BEGIN`` opens the same transaction psycopg would (no isolation level,
        read-only or deferrable option set on the connection), and the cursors bind
        client-side, which a multi-statement query needs."""
        driver = self.connection
        return (
            driver.autocommit
            and driver.isolation_level is None
            and driver.read_only is None
            and driver.deferrable is None
            and self.settings_dict["OPTIONS"].get("server_side_binding") is not True
        )

    def set_autocommit(self, autocommit: bool, force_begin_transaction_with_broken_autocommit: bool = False) -> None:
        super().set_autocommit(
            autocommit,
            force_begin_transaction_with_broken_autocommit=force_begin_transaction_with_broken_autocommit,
        )
        if not autocommit:
            with self.cursor() as cursor:
                rls.apply_to_cursor(cursor, rls.current_principal(), begin=self._begin_with_scope)

    def create_cursor(self, name: str | None = None) -> Any:
        """Django makes a named (server-side) cursor holdable when the *driver* is in
        autocommit mode, which it now also is inside a transaction we opened: there it
        builds the cursor Django builds inside a transaction, not holdable."""
        if name is None or not self._begin_with_scope or self.get_autocommit():
            return super().create_cursor(name)
        cursor = ServerSideCursor(self.connection, name=name, scrollable=False, withhold=False)  # type: ignore[call-arg] # stubs lag
        tzloader = self.connection.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)
        if self.timezone != tzloader.timezone:  # as Django does: only when they disagree
            register_tzloader(self.timezone, cursor)
        return cursor

    def _scope_autocommit_query(
        self,
        execute: Callable[..., Any],
        sql: str,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        if self.get_autocommit() and rls.current_principal() is not None:
            with transaction.atomic(using=self.alias):
                return execute(sql, params, many, context)
        return execute(sql, params, many, context)
