"""With a real Celery worker on the real Redis broker: the on-commit nudge delivers, and
an event written while the broker is down is delivered by the relay once it returns."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from celery.contrib.testing.worker import start_worker

from events.tasks import outbox_relay
from invoices.models import Invoice
from invoices.services import invoice_void
from paymenter import rls
from paymenter.celery import app as celery_app
from paymenter.models import OutboxMessage, OutboxStatus
from tests.callbacks.conftest import TEST_PRINCIPAL, broker_down, evt, outbox_row
from tests.callbacks.receiver import Receiver
from tests.factories import make_customer, make_invoice

pytestmark = pytest.mark.committed


@pytest.fixture
def worker(receiver: Receiver, committed_db: None) -> Iterator[None]:
    celery_app.control.purge()  # nudges left by earlier tests: only nudges, the rows are the truth
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        yield


def _wait_for_status(event_id: uuid.UUID, status: OutboxStatus, timeout: float = 15.0) -> OutboxMessage:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = outbox_row(event_id)
        if row.status == status:
            return row
        time.sleep(0.05)
    raise AssertionError(f"{event_id} not {status} after {timeout} s: {outbox_row(event_id).status}")


def _void(invoice: Invoice) -> uuid.UUID:
    invoice_void(principal=TEST_PRINCIPAL, invoice_id=invoice.id, reason="worker test")
    with rls.acting_as(TEST_PRINCIPAL):
        return OutboxMessage.objects.get(ordering_key=f"invoice:{invoice.id}").event_id


def test_a_worker_delivers_on_commit_and_the_relay_delivers_what_the_broker_missed(
    receiver: Receiver, worker: None
) -> None:
    with rls.acting_as(TEST_PRINCIPAL):
        customer = make_customer()
        first_invoice, second_invoice = make_invoice(customer), make_invoice(customer)

    # broker up: the on-commit nudge reaches the worker
    nudged = _void(first_invoice)
    _wait_for_status(nudged, OutboxStatus.DELIVERED)

    # broker down while the invoice is voided: the change still commits, the row waits
    with broker_down():
        stranded = _void(second_invoice)
        with rls.acting_as(TEST_PRINCIPAL):
            assert Invoice.objects.get(id=second_invoice.id).status == "void"
        time.sleep(0.5)
        assert outbox_row(stranded).status == OutboxStatus.PENDING
        assert outbox_row(stranded).attempts == 0

    # broker back: beat's relay task re-enqueues it and the worker delivers it
    outbox_relay.delay()
    delivered = _wait_for_status(stranded, OutboxStatus.DELIVERED)

    assert delivered.attempts == 1
    ids = {evt(nudged), evt(stranded)}
    assert sorted(event["id"] for event in receiver.accepted_events(ids)) == sorted(ids)
