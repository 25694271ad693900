"""Per-invoice order, and exactly one delivery per event under concurrent relays/workers."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import connection, transaction

from events.delivery import outbox_deliver_message, outbox_relay_due
from invoices.events import InvoiceEvent, invoice_event_record
from invoices.models import Invoice
from invoices.services import invoice_void
from o2s.callbacks import TOPIC as O2S_CALLBACK_TOPIC
from paymenter import rls
from paymenter.models import OutboxMessage, OutboxStatus
from portal.receipts import RECEIPT_TOPIC
from tests.callbacks.conftest import TEST_PRINCIPAL, evt, outbox_row, outbox_rows
from tests.callbacks.receiver import Receiver
from tests.factories import make_customer, make_invoice

pytestmark = pytest.mark.committed

THREADS = 4
MESSAGES = 6


def _two_events(invoice: Invoice) -> tuple[uuid.UUID, uuid.UUID]:
    with rls.acting_as(TEST_PRINCIPAL), transaction.atomic():
        paid = invoice_event_record(event=InvoiceEvent.PAID, invoice=invoice)
        refunded = invoice_event_record(event=InvoiceEvent.REFUNDED, invoice=invoice)
    return _o2s_message(paid).event_id, _o2s_message(refunded).event_id


def _o2s_message(messages: list[OutboxMessage]) -> OutboxMessage:
    """The O2S callback of an event (``invoice.paid`` also has a receipt subscriber)."""
    [callback] = [message for message in messages if message.topic == O2S_CALLBACK_TOPIC]
    return callback


def test_events_of_one_invoice_are_delivered_in_order_even_if_the_later_is_tried_first(
    receiver: Receiver, open_invoice: Invoice
) -> None:
    first, second = _two_events(open_invoice)
    first_row, second_row = outbox_rows([first, second])
    assert first_row.id < second_row.id

    assert outbox_deliver_message(message_id=second_row.id) is None  # waits for the first
    assert receiver.requests == 0
    assert second_row.id not in outbox_relay_due()  # the relay nudges only the head of a key

    assert outbox_deliver_message(message_id=first_row.id) == OutboxStatus.DELIVERED
    assert outbox_deliver_message(message_id=second_row.id) == OutboxStatus.DELIVERED

    ids = {evt(first), evt(second)}
    assert [event["id"] for event in receiver.accepted_events(ids)] == [evt(first), evt(second)]
    assert [event["type"] for event in receiver.accepted_events(ids)] == ["invoice.paid", "invoice.refunded"]


def test_a_failing_earlier_event_holds_back_later_ones_until_it_is_delivered(
    receiver: Receiver, open_invoice: Invoice
) -> None:
    receiver.fail_next = 1
    first, second = _two_events(open_invoice)
    first_row, second_row = outbox_rows([first, second])

    assert outbox_deliver_message(message_id=first_row.id) == OutboxStatus.PENDING  # 500, retry later
    assert outbox_deliver_message(message_id=second_row.id) is None

    assert outbox_row(second).attempts == 0
    assert receiver.accepted_events({evt(first), evt(second)}) == []


def test_a_dead_event_no_longer_blocks_later_ones(receiver: Receiver, open_invoice: Invoice) -> None:
    first, second = _two_events(open_invoice)
    first_row, second_row = outbox_rows([first, second])
    with rls.acting_as(TEST_PRINCIPAL):
        OutboxMessage.objects.filter(id=first_row.id).update(status=OutboxStatus.DEAD)

    assert outbox_deliver_message(message_id=second_row.id) == OutboxStatus.DELIVERED

    assert [event["id"] for event in receiver.accepted_events({evt(first), evt(second)})] == [evt(second)]


def test_a_pending_receipt_never_holds_back_the_o2s_callbacks_of_its_invoice(
    receiver: Receiver, open_invoice: Invoice
) -> None:
    first, second = _two_events(open_invoice)  # invoice.paid, invoice.refunded: O2S + e-mail each
    first_row, second_row = outbox_rows([first, second])
    with rls.acting_as(TEST_PRINCIPAL):
        receipt = OutboxMessage.objects.get(
            ordering_key=f"invoice:{open_invoice.id}", topic=RECEIPT_TOPIC, payload__type="invoice.paid"
        )
    assert first_row.id < receipt.id < second_row.id

    assert outbox_deliver_message(message_id=first_row.id) == OutboxStatus.DELIVERED
    # the receipt is still pending (its SMTP server may be down for hours): O2S must not wait for it
    assert outbox_deliver_message(message_id=second_row.id) == OutboxStatus.DELIVERED

    assert [event["id"] for event in receiver.accepted_events({evt(first), evt(second)})] == [evt(first), evt(second)]
    assert outbox_row(receipt.event_id).status == OutboxStatus.PENDING


def test_concurrent_relays_and_workers_deliver_each_event_exactly_once(receiver: Receiver, committed_db: None) -> None:
    with rls.acting_as(TEST_PRINCIPAL):
        customer = make_customer()
        invoices = [make_invoice(customer) for _ in range(MESSAGES)]
    for invoice in invoices:
        invoice_void(principal=TEST_PRINCIPAL, invoice_id=invoice.id, reason="concurrency test")
    with rls.acting_as(TEST_PRINCIPAL):
        rows = list(OutboxMessage.objects.filter(ordering_key__in=[f"invoice:{i.id}" for i in invoices]))
    assert len(rows) == MESSAGES
    own_ids = [row.id for row in rows]
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def relay_and_deliver() -> None:
        try:
            barrier.wait(timeout=30)
            outbox_relay_due()
            for message_id in own_ids:
                outbox_deliver_message(message_id=message_id)
            outbox_relay_due()
            for message_id in reversed(own_ids):
                outbox_deliver_message(message_id=message_id)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=relay_and_deliver) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    event_ids = {evt(row.event_id) for row in rows}
    received = [event["id"] for event in receiver.accepted_events(event_ids)]
    assert sorted(received) == sorted(event_ids)  # every event exactly once
    assert receiver.requests == MESSAGES  # and no second POST was even attempted
    assert all(
        row.status == OutboxStatus.DELIVERED and row.attempts == 1 for row in outbox_rows([r.event_id for r in rows])
    )
