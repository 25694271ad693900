"""The callback path end to end against a local receiver that verifies signatures:
void an invoice -> outbox row -> signed POST -> delivered; O2S failing, timing out, down."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

import pytest

from audit.actions import AuditAction
from audit.models import AuditEvent
from events.delivery import outbox_deliver_message, outbox_redeliver
from invoices.models import Invoice
from invoices.services import invoice_void
from o2s.callback_delivery import USER_AGENT, callback_body_bytes
from paymenter import rls
from paymenter.models import OutboxMessage, OutboxStatus
from paymenter.principals import StaffPrincipal
from tests.callbacks.conftest import TEST_PRINCIPAL, deliver_until_settled, evt, outbox_row
from tests.callbacks.receiver import Receiver

pytestmark = pytest.mark.committed


def _void(invoice: Invoice) -> uuid.UUID:
    invoice_void(principal=TEST_PRINCIPAL, invoice_id=invoice.id, reason="test")
    with rls.acting_as(TEST_PRINCIPAL):
        return OutboxMessage.objects.get(ordering_key=f"invoice:{invoice.id}").event_id


def _audit_actions(event_id: uuid.UUID) -> list[str]:
    with rls.acting_as(TEST_PRINCIPAL):
        return list(
            AuditEvent.objects.filter(object_type="outbox_message", object_id=str(event_id))
            .order_by("sequence")
            .values_list("action", flat=True)
        )


def test_voiding_an_open_invoice_delivers_one_signed_callback(receiver: Receiver, open_invoice: Invoice) -> None:
    event_id = _void(open_invoice)
    pending = outbox_row(event_id)
    assert (pending.status, pending.attempts, pending.topic) == (OutboxStatus.PENDING, 0, "o2s.callback")

    assert outbox_deliver_message(message_id=pending.id) == OutboxStatus.DELIVERED
    assert outbox_deliver_message(message_id=pending.id) is None  # idempotent: nothing more is sent

    row = outbox_row(event_id)
    assert (row.status, row.attempts, row.last_error) == (OutboxStatus.DELIVERED, 1, "")
    assert row.delivered_at is not None
    [received] = [item for item in receiver.received if item.event["id"] == evt(event_id)]
    assert received.signature_ok
    assert received.body == callback_body_bytes(row.payload)
    assert received.headers["Paymenter-Event-Id"] == evt(event_id)
    assert received.headers["User-Agent"] == USER_AGENT
    assert received.headers["Content-Type"] == "application/json"
    event = received.event
    assert event["type"] == "invoice.voided"
    assert event["data"] == {
        "invoice_id": str(open_invoice.id),
        "invoice_number": open_invoice.number,
        "customer_id": str(open_invoice.customer_id),
        "customer_external_id": open_invoice.customer.external_id,
        "status": "void",
        "currency": "AUD",
        "total_minor": open_invoice.total_minor,
        "amount_paid_minor": 0,
        "amount_refunded_minor": 0,
        "amount_due_minor": 0,  # nothing is due on a void invoice
    }
    assert open_invoice.total_minor == 3190  # 2000 + 2 x 450, plus 10 % GST


def test_o2s_failing_twice_is_retried_with_backoff_then_delivered(
    receiver: Receiver, open_invoice: Invoice, settings: Any
) -> None:
    settings.OUTBOX_RETRY_BASE_SECONDS = 0.4  # each retry 0.2-0.4 s later: "not due yet" is observable
    settings.OUTBOX_RETRY_MAX_DELAY_SECONDS = 0.4
    receiver.fail_next = 2
    event_id = _void(open_invoice)
    row = outbox_row(event_id)

    assert outbox_deliver_message(message_id=row.id) == OutboxStatus.PENDING
    after_first = outbox_row(event_id)
    assert (after_first.attempts, after_first.last_error) == (1, "O2S answered HTTP 500 Internal Server Error")
    assert after_first.last_attempt_at is not None
    assert after_first.next_attempt_at - after_first.last_attempt_at >= timedelta(seconds=0.2)  # backed off
    assert outbox_deliver_message(message_id=row.id) is None  # not due yet: nothing sent

    deliver_until_settled(row.id)

    final = outbox_row(event_id)
    assert (final.status, final.attempts, final.last_error) == (OutboxStatus.DELIVERED, 3, "")
    assert receiver.requests == 3
    assert [event["id"] for event in receiver.accepted_events({evt(event_id)})] == [evt(event_id)]


def test_a_timeout_is_a_failure_that_is_retried(receiver: Receiver, open_invoice: Invoice, settings: Any) -> None:
    settings.O2S_CALLBACK_TIMEOUT_SECONDS = 0.3
    receiver.hang_seconds = 0.8
    event_id = _void(open_invoice)

    assert outbox_deliver_message(message_id=outbox_row(event_id).id) == OutboxStatus.PENDING

    row = outbox_row(event_id)
    assert (row.status, row.attempts, row.last_error) == (OutboxStatus.PENDING, 1, "timed out after 0.3 s")
    assert receiver.accepted_events({evt(event_id)}) == []


def test_without_a_callback_url_delivery_fails_clearly_and_retries(
    receiver: Receiver, open_invoice: Invoice, settings: Any
) -> None:
    settings.O2S_CALLBACK_URL = ""
    event_id = _void(open_invoice)

    assert outbox_deliver_message(message_id=outbox_row(event_id).id) == OutboxStatus.PENDING

    row = outbox_row(event_id)
    assert (row.status, row.attempts, row.last_error) == (OutboxStatus.PENDING, 1, "O2S_CALLBACK_URL is not set")
    assert receiver.requests == 0


def test_o2s_down_past_the_max_age_goes_dead_with_an_alert_and_can_be_redelivered(
    receiver: Receiver, open_invoice: Invoice, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.OUTBOX_MAX_AGE_SECONDS = 1
    receiver.down = True
    event_id = _void(open_invoice)
    message_id = outbox_row(event_id).id

    with caplog.at_level(logging.ERROR, logger="events.delivery"):
        deliver_until_settled(message_id)

    dead = outbox_row(event_id)
    assert dead.status == OutboxStatus.DEAD
    assert dead.attempts >= 3
    assert dead.last_error == "O2S answered HTTP 503 Service Unavailable"
    assert receiver.accepted_events({evt(event_id)}) == []
    alerts = [r for r in caplog.records if r.levelno == logging.ERROR and str(event_id) in r.getMessage()]
    assert len(alerts) == 1
    assert "ALERT" in alerts[0].getMessage()
    assert _audit_actions(event_id) == [AuditAction.CALLBACK_DEAD.value]
    assert outbox_deliver_message(message_id=message_id) is None  # dead stays dead

    # O2S is back; staff press "Redeliver selected"
    receiver.down = False
    staff = StaffPrincipal(user_id=0, username="test-ops")
    assert outbox_redeliver(principal=staff, message_ids=[message_id]) == [event_id]
    assert outbox_row(event_id).status == OutboxStatus.PENDING
    assert _audit_actions(event_id) == [
        AuditAction.CALLBACK_DEAD.value,
        AuditAction.CALLBACK_REDELIVERY_REQUESTED.value,
    ]

    assert outbox_deliver_message(message_id=message_id) == OutboxStatus.DELIVERED
    assert [event["id"] for event in receiver.accepted_events({evt(event_id)})] == [evt(event_id)]
    # redelivering a pending message is a no-op (not audited)
    assert outbox_redeliver(principal=staff, message_ids=[]) == []


def test_redeliver_leaves_pending_messages_alone(receiver: Receiver, open_invoice: Invoice) -> None:
    event_id = _void(open_invoice)
    row = outbox_row(event_id)

    assert outbox_redeliver(principal=StaffPrincipal(user_id=0), message_ids=[row.id]) == []

    assert outbox_row(event_id).status == OutboxStatus.PENDING
    assert _audit_actions(event_id) == []
