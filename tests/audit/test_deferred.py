"""Events of a unit of work are appended together at its end (``audit_deferred``).

That keeps the chain-head lock, which serializes every audited write, down to the last
INSERT and the COMMIT, while each event still commits or rolls back with its change.
"""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from audit.actions import AuditAction
from audit.errors import AuditOutsideTransactionError
from audit.models import AuditEvent
from audit.services import TailInsert, audit_deferred, audit_record, tail_insert, tail_name
from audit.unit_of_work import unit_of_work
from audit.verification import verify_chain
from billing.models import Customer
from paymenter import rls
from paymenter.principals import SystemPrincipal
from paymenter.sql_rows import insert_sql
from tests.audit.helpers import WRITER


def _record(marker: str, index: int) -> AuditEvent:
    return audit_record(action=AuditAction.INVOICE_CREATED, object_type="test", object_id=marker, payload={"i": index})


@pytest.mark.django_db
def test_a_unit_of_work_appends_its_events_in_order_when_it_ends(system_principal: SystemPrincipal) -> None:
    marker = uuid.uuid4().hex
    with unit_of_work(system_principal):
        first, second = _record(marker, 1), _record(marker, 2)
        assert AuditEvent.objects.filter(object_id=marker).count() == 0  # queued, not yet linked
        assert first.hmac == ""

    stored = list(AuditEvent.objects.filter(object_id=marker).order_by("sequence"))
    assert [event.payload["i"] for event in stored] == [1, 2]
    assert stored[1].sequence == stored[0].sequence + 1
    assert stored[1].prev_hash == stored[0].hmac
    assert (first.sequence, second.sequence) == (stored[0].sequence, stored[1].sequence)
    assert verify_chain().ok


@pytest.mark.django_db
def test_a_nested_unit_that_fails_drops_its_events_with_its_writes(system_principal: SystemPrincipal) -> None:
    marker = uuid.uuid4().hex

    def refused_unit_of_work() -> None:
        with unit_of_work(system_principal):
            _record(marker, 2)
            raise RuntimeError("refused")

    with unit_of_work(system_principal):
        _record(marker, 1)
        with pytest.raises(RuntimeError):
            refused_unit_of_work()
        with unit_of_work(system_principal):
            _record(marker, 3)

    assert list(AuditEvent.objects.filter(object_id=marker).order_by("sequence").values_list("payload", flat=True)) == [
        {"i": 1},
        {"i": 3},
    ]
    assert verify_chain().ok


def _tail_customer(external_id: str) -> TailInsert:
    customer = Customer(
        external_id=external_id, billing_country="AU", name="Tail Pty Ltd", email=f"{external_id}@x.example"
    )
    sql, params = insert_sql(Customer, [customer])
    return TailInsert(name=tail_name("customer"), sql=sql, params=params)


@pytest.mark.django_db
def test_tail_inserts_are_written_when_the_unit_of_work_ends_and_dropped_with_it(
    system_principal: SystemPrincipal,
) -> None:
    """``tail_insert`` rows go out with the chain-head lock at the end of the outermost
    block (one round trip); a nested unit that fails takes its queued rows with it."""
    kept, dropped, marker = uuid.uuid4().hex, uuid.uuid4().hex, uuid.uuid4().hex

    def refused_unit_of_work() -> None:
        with unit_of_work(system_principal):
            tail_insert(_tail_customer(dropped))
            raise RuntimeError("refused")

    with CaptureQueriesContext(connection) as queries, unit_of_work(system_principal):
        tail_insert(_tail_customer(kept))
        _record(marker, 1)
        with pytest.raises(RuntimeError):
            refused_unit_of_work()
        assert not Customer.objects.filter(external_id=kept).exists()  # queued, not yet written

    assert Customer.objects.filter(external_id=kept).count() == 1
    assert not Customer.objects.filter(external_id=dropped).exists()
    (lock,) = [query["sql"] for query in queries.captured_queries if "audit_auditchainhead" in query["sql"][-60:]]
    assert lock.startswith("WITH customer_")  # the row and the lock in one statement
    assert "billing_customer" in lock
    assert verify_chain().ok


@pytest.mark.django_db
def test_a_tail_insert_outside_a_unit_of_work_is_written_at_once(system_principal: SystemPrincipal) -> None:
    external_id = uuid.uuid4().hex
    with transaction.atomic():
        tail_insert(_tail_customer(external_id))
        assert Customer.objects.filter(external_id=external_id).count() == 1


@pytest.mark.django_db
def test_tail_names_are_unique_within_a_unit_of_work_and_repeat_across_units(
    system_principal: SystemPrincipal,
) -> None:
    """Nested blocks draw from the outermost block's names (their inserts end up in its
    statement), and the next unit of work running the same code gets the same names: the
    same statement text, which psycopg parses once per process instead of per request."""

    def names() -> list[str]:
        with unit_of_work(system_principal):
            outer = [tail_name("row"), tail_name("row")]
            with unit_of_work(system_principal):
                inner = [tail_name("row")]
            return [*outer, *inner, tail_name("row")]

    first, second = names(), names()
    assert len(set(first)) == 4
    assert first == second


def test_deferring_outside_a_transaction_is_refused() -> None:
    with pytest.raises(AuditOutsideTransactionError), audit_deferred():
        pass


@pytest.mark.committed
def test_the_chain_head_is_not_locked_while_a_unit_of_work_runs(committed_db: None) -> None:
    """A long unit of work that has already recorded an event does not hold up another
    writer: before deferral it held the chain-head lock from its first event to COMMIT."""
    marker = uuid.uuid4().hex
    recorded, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def slow_unit_of_work() -> None:
        try:
            with unit_of_work(SystemPrincipal(label="test:slow")):
                _record(marker, 1)
                recorded.set()
                released = release.wait(timeout=20)
            if not released:
                errors.append(TimeoutError("never released"))
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            errors.append(exc)
        finally:
            connection.close()

    slow = threading.Thread(target=slow_unit_of_work)
    slow.start()
    assert recorded.wait(timeout=20)
    try:
        with rls.acting_as(WRITER), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")  # would fail while the head is locked
            fast = _record(marker, 2)
    finally:
        release.set()
        slow.join(timeout=30)

    assert errors == []
    with rls.acting_as(WRITER):
        stored = list(AuditEvent.objects.filter(object_id=marker).order_by("sequence"))
        assert [event.payload["i"] for event in stored] == [2, 1]  # the fast writer committed first
        assert stored[0].sequence == fast.sequence
        assert verify_chain().ok
