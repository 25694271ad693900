"""Django's PostgreSQL backend plus the row-level security scope (see ``paymenter.rls``).

* Entering ``transaction.atomic`` (autocommit off) writes the current scope with
  ``set_config(..., true)`` as the transaction's first statement.
* A query run in autocommit mode is wrapped in its own short transaction so that it
  carries the scope as well; with no principal it simply runs unscoped and the
  policies hide every customer row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.db.backends.postgresql import base

from paymenter import rls


class DatabaseWrapper(base.DatabaseWrapper):
    applies_rls_scope = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.execute_wrappers.append(self._scope_autocommit_query)

    def set_autocommit(self, autocommit: bool, force_begin_transaction_with_broken_autocommit: bool = False) -> None:
        super().set_autocommit(
            autocommit,
            force_begin_transaction_with_broken_autocommit=force_begin_transaction_with_broken_autocommit,
        )
        if not autocommit:
            with self.cursor() as cursor:
                rls.apply_to_cursor(cursor, rls.current_principal())

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
