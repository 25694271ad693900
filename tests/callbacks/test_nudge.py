"""The nudge after a commit (``paymenter.outbox.outbox_nudge``): the message Celery's
``send_task`` would publish, sent as one ``LPUSH`` (``TaskPublisher``); ``send_task`` itself
wherever publishing is hooked or delayed; a broker that is down costs a warning, never an
error. That a real worker consumes these nudges is ``test_celery_worker.py``'s first half
(the on-commit nudge of a voided invoice)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery.signals import before_task_publish

import events.tasks
from paymenter.celery import app as celery_app
from paymenter.outbox import DELIVER_TASK, TaskPublisher, outbox_nudge, task_publisher
from tests.callbacks.conftest import broker_down


@pytest.fixture
def publisher() -> Iterator[TaskPublisher]:
    """The tests' broker is the plain Redis set-up the publisher mirrors; its queue is
    emptied before and after (only nudges: the outbox rows are the truth). The deliver task
    is registered, as in a worker: ``send_task`` then publishes with its time limits."""
    assert celery_app.tasks[DELIVER_TASK].name == events.tasks.outbox_deliver.name == DELIVER_TASK
    found = task_publisher()
    assert found is not None
    found.client.delete(found.queue)
    yield found
    found.client.delete(found.queue)


def _queued(publisher: TaskPublisher) -> list[dict[str, Any]]:
    """The queue's messages, oldest first (``LPUSH`` puts the newest at the head)."""
    return [json.loads(raw) for raw in reversed(publisher.client.lrange(publisher.queue, 0, -1))]


def _arguments(message: dict[str, Any]) -> Any:
    return json.loads(base64.b64decode(message["body"]))


def test_a_nudge_is_the_message_send_task_publishes(publisher: TaskPublisher) -> None:
    celery_app.send_task(DELIVER_TASK, args=(7,), retry=False)
    outbox_nudge(7)

    theirs, mine = _queued(publisher)
    assert mine.keys() == theirs.keys()
    assert mine["headers"].keys() == theirs["headers"].keys()
    assert mine["properties"].keys() == theirs["properties"].keys()
    ids = {"id", "root_id", "correlation_id", "delivery_tag"}  # fresh per message
    assert {k: v for k, v in mine["headers"].items() if k not in ids} == {
        k: v for k, v in theirs["headers"].items() if k not in ids
    }
    assert {k: v for k, v in mine["properties"].items() if k not in ids} == {
        k: v for k, v in theirs["properties"].items() if k not in ids
    }
    assert {k: v for k, v in mine.items() if k not in {"headers", "properties"}} == {
        k: v for k, v in theirs.items() if k not in {"headers", "properties"}
    }
    assert (
        _arguments(mine)
        == _arguments(theirs)
        == [[7], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    )
    assert mine["headers"]["timelimit"] == [90, 60]  # the task's own (events/tasks.py)
    task_id = mine["headers"]["id"]
    assert mine["headers"]["root_id"] == mine["properties"]["correlation_id"] == task_id
    assert mine["headers"]["task"] == DELIVER_TASK


def test_a_receiver_of_the_publish_signal_gets_nudges_through_send_task(publisher: TaskPublisher) -> None:
    seen: list[object] = []

    def receiver(sender: object = None, **kwargs: object) -> None:
        seen.append(sender)

    before_task_publish.connect(receiver)
    try:
        outbox_nudge(8)
    finally:
        before_task_publish.disconnect(receiver)

    assert seen == [DELIVER_TASK]
    [message] = _queued(publisher)
    assert _arguments(message)[0] == [8]


def test_a_delayed_nudge_goes_through_send_task_with_its_eta(publisher: TaskPublisher) -> None:
    outbox_nudge(9, countdown=30)

    [message] = _queued(publisher)
    assert _arguments(message)[0] == [9]
    assert message["headers"]["eta"] is not None


def test_a_broker_that_is_down_costs_a_warning_and_queues_nothing(
    publisher: TaskPublisher, caplog: pytest.LogCaptureFixture
) -> None:
    with broker_down():
        outbox_nudge(10)  # no exception: the row stays pending for the relay

    assert "outbox nudge failed; the relay will deliver message 10" in caplog.text
    assert _queued(publisher) == []


def test_a_connection_the_server_closed_is_reopened_once(
    publisher: TaskPublisher, caplog: pytest.LogCaptureFixture
) -> None:
    outbox_nudge(12)  # the kept connection exists
    own_id = publisher.client.client_id()
    killer = redis.Redis(connection_pool=publisher.client.connection_pool)
    killer.client_kill_filter(_id=own_id)

    outbox_nudge(13)

    assert [_arguments(message)[0] for message in _queued(publisher)] == [[12], [13]]
    assert "outbox nudge failed" not in caplog.text
