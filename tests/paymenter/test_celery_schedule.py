"""The beat schedule lives in code; every entry must name a task the worker knows."""

from __future__ import annotations

from django.conf import settings

from paymenter.celery import app


def test_every_beat_entry_names_a_registered_task() -> None:
    app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert scheduled == {
        "events.tasks.outbox_relay",
        "o2s.tasks.idempotency_purge",
        "audit.tasks.refusals_flush",
        "gateways.tasks.payment_attempts_reconcile",
        "gateways.tasks.payment_daily_summary",
    }
    assert scheduled <= set(app.tasks)


def test_tasks_acknowledge_late_and_are_time_limited() -> None:
    app.loader.import_default_modules()
    for name in (
        "events.tasks.outbox_deliver",
        "events.tasks.outbox_relay",
        "o2s.tasks.idempotency_purge",
        "audit.tasks.refusals_flush",
        "gateways.tasks.payment_attempts_reconcile",
        "gateways.tasks.payment_daily_summary",
    ):
        task = app.tasks[name]
        assert task.acks_late is True
        assert task.reject_on_worker_lost is True
        assert task.time_limit is not None
        assert task.max_retries is not None
