"""``paymenter.inserts.insert_sql``: Django's INSERT for rows, without the compiler's cost,
prepared exactly as the compiler prepares it (or by the compiler where it must)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection

from audit.models import AuditEvent
from invoices.models import InvoiceNumberSequence
from paymenter.inserts import _compiled_insert_sql, insert_sql


def _event(sequence: int) -> AuditEvent:
    return AuditEvent(
        sequence=sequence,
        occurred_at=dt.datetime(2026, 11, 28, 1, 2, 3, 456789, tzinfo=dt.UTC),
        actor_type="system",
        actor_id="test",
        action="invoice.created",
        object_type="invoice",
        object_id="x",
        payload={"number": "INV-2026-000001", "lines": [1, 2]},
        request_id="req",
        ip="203.0.113.7",
        prev_hash="0" * 64,
        hmac="1" * 64,
        key_id="k1",
    )


def _plain(value: Any) -> Any:
    return getattr(value, "obj", value)  # psycopg's Jsonb wrapper compares by what it wraps


@pytest.mark.django_db
def test_one_row_is_what_the_compiler_would_send() -> None:
    fast_sql, fast_params = insert_sql(AuditEvent, [_event(1)])
    compiled_sql, compiled_params = _compiled_insert_sql(AuditEvent, AuditEvent._meta.concrete_fields, [_event(1)])

    assert fast_sql == compiled_sql
    assert [_plain(value) for value in fast_params] == [_plain(value) for value in compiled_params]


@pytest.mark.django_db
def test_several_rows_are_one_values_list_of_the_same_prepared_values() -> None:
    sql, params = insert_sql(AuditEvent, [_event(1), _event(2)])

    assert sql.count("(%s") == 2
    one = [_plain(value) for value in insert_sql(AuditEvent, [_event(1)])[1]]
    assert [_plain(value) for value in params[: len(one)]] == one


@pytest.mark.django_db
def test_a_key_the_database_generates_is_left_out_as_bulk_create_leaves_it() -> None:
    row = InvoiceNumberSequence(prefix="T", year=2026, last_number=1)
    sql, params = insert_sql(InvoiceNumberSequence, [row])
    fields = [field for field in InvoiceNumberSequence._meta.concrete_fields if not field.primary_key]

    assert (sql, params) == _compiled_insert_sql(InvoiceNumberSequence, fields, [row])
    assert connection.ops.quote_name("id") not in sql
