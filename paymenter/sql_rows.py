"""Model rows to and from hand-written SQL, prepared and decoded exactly as the ORM does.

The O2S write path runs on every invoice O2S creates, and there the ORM's query
compilation cost more than PostgreSQL's work (docs/performance.md). So it combines several
INSERTs into one round trip (common table expressions: ``audit.services.tail_insert``,
``invoices.services.lifecycle``) and reads rows with plain SQL; every value still goes
through the fields' own preparation (``pre_save``, ``get_db_prep_save``: ``auto_now_add``,
encrypted fields, JSON) and decoding (``from_db_value``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Field, Model
from django.db.models.sql import InsertQuery

_M = TypeVar("_M", bound=Model)


def insert_sql(model: type[Model], rows: Sequence[Model]) -> tuple[str, tuple[Any, ...]]:
    """``INSERT INTO <table> (<its concrete fields>) VALUES ...`` for ``rows``, and its
    parameters, each value prepared as ``save()`` prepares it (``pre_save``, then
    ``get_db_prep_save``), without the cost of Django's INSERT compiler. A key the database
    generates (an ``AutoField`` the rows leave empty) is left out, as ``bulk_create`` does;
    a field with a placeholder of its own, or an expression as a value, goes through the
    compiler instead."""
    opts = model._meta
    generated = opts.auto_field is not None and all(row.pk is None for row in rows)
    fields = [field for field in opts.concrete_fields if not (generated and field is opts.auto_field)]
    if any(hasattr(field, "get_placeholder") for field in fields):
        return _compiled_insert_sql(model, fields, rows)
    connection = connections[DEFAULT_DB_ALIAS]
    values: list[Any] = []
    for row in rows:
        for field in fields:
            value = field.pre_save(row, True)
            if hasattr(value, "resolve_expression"):
                return _compiled_insert_sql(model, fields, rows)
            values.append(field.get_db_prep_save(value, connection=connection))
    quote = connection.ops.quote_name
    row_placeholders = "(" + ", ".join(["%s"] * len(fields)) + ")"
    columns = ", ".join(quote(str(field.column)) for field in fields)
    # identifiers from the model's metadata, quoted; every value is a parameter
    sql = f"INSERT INTO {quote(opts.db_table)} ({columns}) VALUES {', '.join([row_placeholders] * len(rows))}"  # noqa: S608
    return sql, tuple(values)


def _compiled_insert_sql(
    model: type[Model], fields: Sequence[Field[Any, Any]], rows: Sequence[Model]
) -> tuple[str, tuple[Any, ...]]:
    query = InsertQuery(model)
    query.insert_values(list(fields), list(rows))
    ((sql, params),) = query.get_compiler(using=DEFAULT_DB_ALIAS).as_sql()
    return sql, tuple(params)


def rows_saved(rows: Sequence[Model]) -> None:
    """Mark ``rows`` as stored, as ``save()`` or ``bulk_create()`` would leave them."""
    for row in rows:
        row._state.adding = False
        row._state.db = DEFAULT_DB_ALIAS


def row_fetch(model: type[_M], sql: str, params: Sequence[Any]) -> tuple[_M, dict[str, Any]] | None:
    """The first row of ``sql`` as a ``model`` instance (every concrete field's column must
    be selected, e.g. ``SELECT t.*, ...``), decoded by the fields as a query would decode it,
    and the other columns by name; ``None`` without a row."""
    connection = connections[DEFAULT_DB_ALIAS]
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        values = cursor.fetchone()
        names = [column.name for column in cursor.description or ()]
    if values is None:
        return None
    row: Mapping[str, Any] = dict(zip(names, values, strict=True))
    fields = model._meta.concrete_fields
    columns = [str(field.column) for field in fields]
    decoded = [
        field.from_db_value(row[column], None, connection) if hasattr(field, "from_db_value") else row[column]
        for field, column in zip(fields, columns, strict=True)
    ]
    instance = model.from_db(DEFAULT_DB_ALIAS, [field.attname for field in fields], decoded)
    return instance, {name: value for name, value in row.items() if name not in set(columns)}
