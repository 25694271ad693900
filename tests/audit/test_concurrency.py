"""Concurrent writers still produce one gap-free, linear, verifiable chain."""

from __future__ import annotations

import itertools
import threading
import uuid

import pytest
from django.db import connection, transaction

from audit.actions import AuditAction
from audit.models import AuditChainHead, AuditEvent
from audit.services import audit_record
from audit.verification import verify_chain
from paymenter import rls
from paymenter.principals import SystemPrincipal
from tests.audit.helpers import WRITER

pytestmark = pytest.mark.committed

THREADS = 8
EVENTS_PER_THREAD = 10


def test_concurrent_writers_form_one_linear_chain(committed_db: None) -> None:
    run_id = uuid.uuid4().hex
    with rls.acting_as(WRITER):
        head_before = AuditChainHead.objects.get().last_sequence
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def writer(thread_index: int) -> None:
        try:
            with rls.acting_as(SystemPrincipal(label=f"test:thread-{thread_index}")):
                barrier.wait(timeout=30)
                for event_index in range(EVENTS_PER_THREAD):
                    with transaction.atomic():
                        audit_record(
                            action=AuditAction.INVOICE_CREATED,
                            object_type="concurrency",
                            object_id=run_id,
                            payload={"thread": thread_index, "event": event_index},
                        )
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(index,)) for index in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    with rls.acting_as(WRITER):
        rows = list(AuditEvent.objects.filter(object_id=run_id).order_by("sequence"))
        head_after = AuditChainHead.objects.get()
        result = verify_chain()
    total = THREADS * EVENTS_PER_THREAD
    assert [row.sequence for row in rows] == list(range(head_before + 1, head_before + total + 1))
    assert all(later.prev_hash == earlier.hmac for earlier, later in itertools.pairwise(rows))
    assert (head_after.last_sequence, head_after.last_hash) == (rows[-1].sequence, rows[-1].hmac)
    for thread_index in range(THREADS):
        own = [row.payload["event"] for row in rows if row.payload["thread"] == thread_index]
        assert own == list(range(EVENTS_PER_THREAD))
    assert (result.ok, result.checked) == (True, head_after.last_sequence)
