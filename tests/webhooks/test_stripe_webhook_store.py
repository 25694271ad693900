"""Storing a verified delivery as the server does it, with no test transaction around it:
one statement - the RLS scope, the inbox row and its outbox message - sent as one round trip
that is its own transaction, then one nudge to the broker. A duplicate writes and nudges
nothing; a statement the database refuses leaves neither row behind; the scope ends with it.

On committed data (``committed_db``): each test uses event ids of its own."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import DatabaseError, connection
from django.db.models import Q
from django.test import Client
from django.test.utils import CaptureQueriesContext

from gateways.models import WebhookEvent
from gateways.services import WEBHOOK_TOPIC, webhook_event_store
from gateways.stripe.webhooks import stripe_event_parse
from paymenter import rls
from paymenter.models import OutboxMessage
from paymenter.outbox import TaskPublisher, outbox_enqueue_if_inserted, task_publisher
from paymenter.principals import CustomerPrincipal, SystemPrincipal
from tests.stripe_events import WEBHOOK_URL, checkout_session_event, signed, stripe_webhooks_only

pytestmark = pytest.mark.committed
READER = SystemPrincipal(label="test:webhook-store")
# An inbox row written by the test itself (the body is a placeholder: never read back).
INBOX_INSERT = """
INSERT INTO gateways_webhookevent
    (id, gateway, event_id, event_type, object_id, body, signed_at, received_at, status, attempts, last_error)
VALUES (%s, 'stripe', %s, 'checkout.session.completed', '', 'placeholder', NULL, now(), 'received', 0, '')
ON CONFLICT (gateway, event_id) DO NOTHING
RETURNING id
"""


@pytest.fixture
def queue(committed_db: None, settings: Any) -> Iterator[TaskPublisher]:
    """Stripe configured, and the broker's queue emptied before and after."""
    stripe_webhooks_only(settings)
    publisher = task_publisher()
    assert publisher is not None
    publisher.client.delete(publisher.queue)
    yield publisher
    publisher.client.delete(publisher.queue)


def _nudged(publisher: TaskPublisher) -> list[int]:
    """The outbox message ids nudged, oldest first."""
    messages = [json.loads(raw) for raw in reversed(publisher.client.lrange(publisher.queue, 0, -1))]
    return [json.loads(base64.b64decode(message["body"]))[0][0] for message in messages]


def _rows(event_id: str) -> tuple[list[WebhookEvent], list[OutboxMessage]]:
    with rls.acting_as(READER):
        inbox = list(WebhookEvent.objects.filter(gateway="stripe", event_id=event_id))
        # the view's message names the inbox row; the tests' own messages name the event
        named = [str(row.pk) for row in inbox]
        outbox = list(OutboxMessage.objects.filter(Q(payload__webhook_event_id__in=named) | Q(payload__event=event_id)))
    return inbox, outbox


def _post(body: str, header: str) -> Any:
    return Client().post(WEBHOOK_URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)


def _event_id() -> str:
    return f"evt_test_{uuid.uuid4().hex}"


def test_a_delivery_is_one_statement_then_one_nudge(queue: TaskPublisher) -> None:
    event_id = _event_id()
    body, header = signed(checkout_session_event(event_id=event_id))

    with CaptureQueriesContext(connection) as queries:
        response = _post(body, header)

    assert response.status_code == 200
    assert response.json() == {"received": True, "duplicate": False}
    [statement] = [query["sql"] for query in queries.captured_queries]
    assert statement.startswith("SELECT set_config('paymenter.scope', 'system', true)")
    [stored], [message] = _rows(event_id)
    assert str(stored.body) == body
    assert (message.topic, message.status, message.attempts, message.customer_id) == (
        WEBHOOK_TOPIC,
        "pending",
        0,
        None,
    )
    assert message.payload == {
        "webhook_event_id": str(stored.pk),
        "gateway": "stripe",
        "type": "checkout.session.completed",
    }
    assert message.next_attempt_at == message.created_at
    assert _nudged(queue) == [message.id]


def test_an_event_id_as_long_as_the_parser_allows_is_stored_with_its_own_ordering_key(queue: TaskPublisher) -> None:
    """Stripe's ids are short, but the parser accepts 255 characters: such a delivery once
    overflowed the outbox ordering key (100 characters) and answered 500 on every retry."""
    event_id = "evt_" + "x" * 219 + uuid.uuid4().hex  # 255 characters
    body, header = signed(checkout_session_event(event_id=event_id))

    response = _post(body, header)

    assert response.status_code == 200
    assert response.json() == {"received": True, "duplicate": False}
    [stored], [message] = _rows(event_id)
    assert message.ordering_key == f"webhook:{stored.pk}"


def test_a_duplicate_writes_nothing_and_nudges_nothing(queue: TaskPublisher) -> None:
    event_id = _event_id()
    body, header = signed(checkout_session_event(event_id=event_id))
    assert _post(body, header).json() == {"received": True, "duplicate": False}
    first = _rows(event_id)
    nudged = _nudged(queue)

    with CaptureQueriesContext(connection) as queries:
        again = _post(body, header)

    assert again.json() == {"received": True, "duplicate": True}
    assert len(queries.captured_queries) == 1
    assert _rows(event_id) == first
    assert _nudged(queue) == nudged


def test_the_scope_ends_with_the_statement(queue: TaskPublisher) -> None:
    event_id = _event_id()
    body, _ = signed(checkout_session_event(event_id=event_id))

    stored_id = webhook_event_store(event=stripe_event_parse(body.encode()), body=body.encode(), signed_at=None)

    assert stored_id is not None
    with connection.cursor() as cursor:  # the same connection, the next transaction
        cursor.execute("SELECT current_setting('paymenter.scope', true)")
        assert cursor.fetchone() in {("",), (None,)}
    assert len(_rows(event_id)[0]) == 1


def test_a_scope_the_inbox_refuses_writes_neither_row(queue: TaskPublisher) -> None:
    event_id = _event_id()
    customer = CustomerPrincipal(user_id=1, customer_ids=frozenset({uuid.uuid4()}))

    with pytest.raises(DatabaseError, match="row-level security"):
        outbox_enqueue_if_inserted(
            principal=customer,
            insert_sql=INBOX_INSERT,
            insert_params=[uuid.uuid4(), event_id],
            topic=WEBHOOK_TOPIC,
            payload={"event": event_id},
            ordering_key=f"webhook:stripe:{event_id}",
        )

    assert _rows(event_id) == ([], [])
    assert _nudged(queue) == []


def test_an_outbox_insert_the_database_refuses_takes_the_inbox_row_with_it(queue: TaskPublisher) -> None:
    event_id = _event_id()

    with pytest.raises(DatabaseError, match="too long"):
        outbox_enqueue_if_inserted(
            principal=READER,
            insert_sql=INBOX_INSERT,
            insert_params=[uuid.uuid4(), event_id],
            topic="t" * 65,  # the column holds 64
            payload={"event": event_id},
            ordering_key=f"webhook:stripe:{event_id}",
        )

    assert _rows(event_id) == ([], [])
    assert _nudged(queue) == []
