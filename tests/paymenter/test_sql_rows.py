"""``paymenter.sql_rows``: Django's INSERT for rows without the compiler's cost, prepared
exactly as the compiler prepares it (or by the compiler where it must), and rows read with
plain SQL decoded exactly as a query decodes them."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from django.db import connection

from audit.models import AuditEvent
from billing.models import Customer
from invoices.models import InvoiceNumberSequence
from paymenter.sql_rows import _compiled_insert_sql, insert_sql, row_fetch
from tests.factories import make_customer


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


@pytest.mark.django_db
def test_a_fetched_row_decodes_as_the_orm_decodes_it(system_principal: object) -> None:
    customer = make_customer(postal_address={"line1": "1 Sandy Bay Rd", "city": "Hobart", "country": "AU"})
    fetched = row_fetch(Customer, "SELECT c.*, 41 + 1 AS answer FROM billing_customer c WHERE c.id = %s", [customer.id])
    assert fetched is not None
    row, extra = fetched
    loaded = Customer.objects.get(id=customer.id)

    assert extra == {"answer": 42}
    assert row._state.adding is False
    for field in Customer._meta.concrete_fields:  # encrypted fields decrypt to the same values
        assert getattr(row, field.attname) == getattr(loaded, field.attname), field.name
    assert (row.name, row.postal_address["city"]) == (customer.name, "Hobart")
    assert row_fetch(Customer, "SELECT c.* FROM billing_customer c WHERE c.id = %s", [uuid.uuid4()]) is None
