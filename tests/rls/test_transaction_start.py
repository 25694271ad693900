"""A transaction opens with its row-level security scope in one round trip.

The backend (``paymenter.postgres_rls``) sends ``BEGIN;SELECT set_config(...)`` as one
query instead of psycopg's own ``BEGIN`` followed by the scope, so the driver connection
stays in autocommit mode. These tests hold that it is still a transaction with exactly
that scope, that nothing outlives it, and that a server-side cursor inside it is not made
holdable (Django decides that from the driver's mode).

On committed data (``committed_db``): the transactions here are outermost, as a request's.
"""

from __future__ import annotations

import uuid

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from psycopg import pq

from billing.models import Customer
from paymenter import rls
from paymenter.principals import SystemPrincipal
from tests.factories import make_customer

pytestmark = pytest.mark.committed
SYSTEM = SystemPrincipal(label="test:transaction-start")


def _scope() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('paymenter.scope', true)")
        return str(cursor.fetchone()[0] or "")


def test_begin_and_the_scope_are_one_query_and_the_scope_ends_with_the_transaction(committed_db: None) -> None:
    with CaptureQueriesContext(connection) as queries, rls.acting_as(SYSTEM), transaction.atomic():
        driver_autocommit = connection.connection.autocommit
        status = connection.connection.info.transaction_status
        inside = _scope()

    sent = [query["sql"] for query in queries.captured_queries]
    # Django logs "BEGIN" when it starts a transaction (it sends nothing itself); the one
    # query that opens it follows, and psycopg, in autocommit mode, sent no BEGIN of its own
    assert sent[0] == "BEGIN"
    assert sent[1].startswith("BEGIN;SELECT set_config('paymenter.scope', 'system', true)")
    assert (driver_autocommit, status) == (True, pq.TransactionStatus.INTRANS)
    assert inside == "system"
    assert connection.connection.info.transaction_status == pq.TransactionStatus.IDLE  # committed
    assert _scope() == ""  # no principal now: the setting died with the transaction


def test_a_failed_transaction_opened_this_way_rolls_back_its_writes(committed_db: None) -> None:
    external_id = f"rollback-{uuid.uuid4().hex}"

    def refused() -> None:
        with rls.acting_as(SYSTEM), transaction.atomic():
            make_customer(external_id=external_id)
            raise RuntimeError("refused")

    with pytest.raises(RuntimeError):
        refused()

    with rls.acting_as(SYSTEM):
        assert not Customer.objects.filter(external_id=external_id).exists()


def test_a_server_side_cursor_in_a_transaction_is_not_holdable(committed_db: None) -> None:
    with rls.acting_as(SYSTEM):
        make_customer()
        make_customer()
        with transaction.atomic():
            rows = Customer.objects.order_by("pk").iterator(chunk_size=1)
            next(rows)
            with connection.cursor() as cursor:
                cursor.execute("SELECT is_holdable FROM pg_cursors WHERE name LIKE '_django_curs_%'")
                holdable = [row[0] for row in cursor.fetchall()]
            list(rows)  # the rest: the iterator closes its cursor

    assert holdable == [False]
