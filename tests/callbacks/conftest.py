"""Fixtures of the callback tests: a local O2S receiver and a seconds-long retry schedule.

These tests commit data (real concurrency, real workers): they use their own customers
and invoices and assert on their own event ids only.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from billing.models import Customer
from events.delivery import outbox_deliver_message
from invoices.models import Invoice
from paymenter import rls
from paymenter.celery import app as celery_app
from paymenter.models import OutboxMessage, OutboxStatus
from paymenter.principals import SystemPrincipal
from tests.callbacks.receiver import Receiver, running_receiver
from tests.factories import make_customer, make_invoice

SECRET = "test-callback-secret-1"
TEST_PRINCIPAL = SystemPrincipal(label="test:callbacks")


@pytest.fixture
def receiver(settings: Any) -> Iterator[Receiver]:
    with running_receiver([SECRET]) as running:
        settings.O2S_CALLBACK_URL = running.url
        settings.O2S_CALLBACK_SECRETS = SECRET
        settings.O2S_CALLBACK_TIMEOUT_SECONDS = 1
        settings.OUTBOX_RETRY_BASE_SECONDS = 0.05
        settings.OUTBOX_RETRY_MAX_DELAY_SECONDS = 0.2
        settings.OUTBOX_MAX_AGE_SECONDS = 30
        settings.OUTBOX_RELAY_INTERVAL_SECONDS = 60
        yield running


@pytest.fixture
def open_invoice(committed_db: None) -> Invoice:
    with rls.acting_as(TEST_PRINCIPAL):
        customer: Customer = make_customer()
        return make_invoice(customer)


def outbox_rows(event_ids: list[uuid.UUID]) -> list[OutboxMessage]:
    with rls.acting_as(TEST_PRINCIPAL):
        return list(OutboxMessage.objects.filter(event_id__in=event_ids).order_by("id"))


def outbox_row(event_id: uuid.UUID) -> OutboxMessage:
    with rls.acting_as(TEST_PRINCIPAL):
        return OutboxMessage.objects.get(event_id=event_id)


def evt(event_id: uuid.UUID) -> str:
    return f"evt_{event_id.hex}"


def deliver_until_settled(message_id: int, *, timeout: float = 10.0) -> list[object]:
    """Call the worker entry point repeatedly (as the retry nudges would) until the
    message is no longer pending; returns what each call returned."""
    results: list[object] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        results.append(outbox_deliver_message(message_id=message_id))
        with rls.acting_as(TEST_PRINCIPAL):
            status = OutboxMessage.objects.values_list("status", flat=True).get(id=message_id)
        if status != OutboxStatus.PENDING:
            return results
        time.sleep(0.02)
    raise AssertionError(f"message {message_id} still pending after {timeout} s")


@contextmanager
def broker_down() -> Iterator[None]:
    """Point Celery at a closed local port (nothing listens there), then restore it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    original = celery_app.conf.broker_url
    _switch_broker(f"redis://127.0.0.1:{closed_port}/0")
    try:
        yield
    finally:
        _switch_broker(original)


def _switch_broker(url: str) -> None:
    celery_app.conf["broker_url"] = url
    # the cached producer pools would keep publishing to the old URL; drop them
    celery_app._pool = None  # type: ignore[attr-defined]  # private, not in the stubs
    celery_app.amqp._producer_pool = None  # type: ignore[attr-defined]  # private, not in the stubs
