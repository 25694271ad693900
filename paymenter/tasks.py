"""Celery tasks of the platform: thin wrappers that load by id and call one service."""

from __future__ import annotations

from celery import shared_task

from paymenter.outbox_delivery import outbox_deliver_message, outbox_relay_due


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def outbox_deliver(message_id: int) -> None:
    outbox_deliver_message(message_id=message_id)


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def outbox_relay() -> None:
    outbox_relay_due()
