"""Django's own INSERT statement for model rows, to send in a combined statement.

The hot write paths combine several INSERTs into one round trip (common table expressions:
``audit.services.tail_insert``, ``invoices.services.lifecycle``); the SQL and parameters
are still Django's, so every field is prepared exactly as ``save()`` / ``bulk_create()``
would prepare it (``auto_now_add``, encrypted fields, JSON).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS
from django.db.models import Model
from django.db.models.sql import InsertQuery


def insert_sql(model: type[Model], rows: Sequence[Model]) -> tuple[str, tuple[Any, ...]]:
    """``INSERT INTO <table> (<every concrete field>) ...`` for ``rows``, and its parameters."""
    query = InsertQuery(model)
    query.insert_values(model._meta.concrete_fields, list(rows))
    ((sql, params),) = query.get_compiler(using=DEFAULT_DB_ALIAS).as_sql()
    return sql, tuple(params)


def rows_saved(rows: Sequence[Model]) -> None:
    """Mark ``rows`` as stored, as ``save()`` or ``bulk_create()`` would leave them."""
    for row in rows:
        row._state.adding = False
        row._state.db = DEFAULT_DB_ALIAS
