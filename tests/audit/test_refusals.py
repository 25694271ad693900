"""Refused requests are counted in Redis and audited as one event per source and window:
exact counts under concurrency, nothing lost when the database or Redis fails."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from django.db import DatabaseError
from django_redis import get_redis_connection
from redis.exceptions import ConnectionError as RedisConnectionError

from audit import refusals as audit_refusals
from audit.models import AuditEvent
from audit.refusals import refusals_flush
from paymenter import metrics, refusals, rls
from paymenter.metrics import Metric, metrics_snapshot
from paymenter.principals import SystemPrincipal
from paymenter.refusals import RefusalKind, refusal_gate, refusal_record, refusal_vouch

READER = SystemPrincipal(label="test:refusals-reader")
WINDOW_START = 1_800_000_000  # a window boundary (REFUSAL_WINDOW_SECONDS = 60)
INSIDE = WINDOW_START + 20.0
AFTER = WINDOW_START + 60 + refusals.CLOSE_GRACE_SECONDS


@pytest.fixture(autouse=True)
def _window(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.REFUSAL_WINDOW_SECONDS = 60
    settings.REFUSAL_LIMIT_PER_WINDOW = 5
    monkeypatch.setattr(refusals, "clock", lambda: INSIDE)


def _events_for(object_id: str) -> list[AuditEvent]:
    with rls.acting_as(READER):
        return list(AuditEvent.objects.filter(object_type="request_source", object_id=object_id))


@pytest.mark.django_db
def test_a_closed_window_becomes_one_event_with_counts_times_and_reasons() -> None:
    for offset, reason in ((1.0, "missing"), (2.5, "unknown"), (7.25, "unknown")):
        refusal_record(kind=RefusalKind.API, source="198.51.100.7", reason=reason, detail="", now=WINDOW_START + offset)

    assert refusals_flush(now=WINDOW_START + 61) == 0  # still open (grace): nothing written
    assert refusals_flush(now=AFTER) == 1

    [event] = _events_for(f"api:{WINDOW_START}:198.51.100.7")
    assert event.action == "requests.refused"
    assert event.payload == {
        "kind": "api",
        "source": "198.51.100.7",
        "window_start": "2027-01-15T08:00:00Z",
        "window_seconds": 60,
        "count": 3,
        "first_at": "2027-01-15T08:00:01Z",
        "last_at": "2027-01-15T08:00:07.250000Z",
        "reasons": {"missing": 1, "unknown": 2},
        "details": {},
    }
    assert refusals_flush(now=AFTER + 600) == 0  # settled once
    assert len(_events_for(f"api:{WINDOW_START}:198.51.100.7")) == 1


@pytest.mark.committed
def test_concurrent_refusals_are_all_counted(committed_db: None) -> None:
    threads, per_thread = 8, 50
    barrier = threading.Barrier(threads)

    def refuse() -> None:
        barrier.wait(timeout=30)
        for _ in range(per_thread):
            refusal_record(kind=RefusalKind.API, source="198.51.100.8", reason="malformed", now=INSIDE)

    workers = [threading.Thread(target=refuse) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    refusals_flush(now=AFTER)
    [event] = _events_for(f"api:{WINDOW_START}:198.51.100.8")
    assert (event.payload["count"], event.payload["reasons"]) == (400, {"malformed": 400})


@pytest.mark.django_db
def test_past_the_limit_the_source_is_over_and_told_when_to_come_back() -> None:
    standings = [refusal_record(kind=RefusalKind.API, source="198.51.100.9", reason="unknown") for _ in range(6)]

    assert [standing.over_limit for standing in standings if standing] == [False] * 5 + [True]
    over = refusal_gate(kind=RefusalKind.API, source="198.51.100.9")
    assert over is not None
    assert (over.count, over.retry_after) == (7, 40)  # counted; told to come back at the window's end
    assert refusal_gate(kind=RefusalKind.API, source="198.51.100.10") is None
    assert refusal_gate(kind=RefusalKind.STAFF_LOGIN, source="198.51.100.9") is None


@pytest.mark.django_db
def test_the_gate_lets_an_address_under_the_limit_or_a_vouched_credential_through_and_writes_nothing() -> None:
    refusal_vouch("the-key-o2s-presents")
    for _ in range(5):
        assert refusal_gate(kind=RefusalKind.API, source="198.51.100.15") is None  # under: nothing counted
    for _ in range(6):
        refusal_record(kind=RefusalKind.API, source="198.51.100.15", reason="unknown")

    vouched = refusal_gate(kind=RefusalKind.API, source="198.51.100.15", credential="the-key-o2s-presents")
    forged = refusal_gate(kind=RefusalKind.API, source="198.51.100.15", credential="another-key")

    assert vouched is None
    assert forged is not None
    refusals_flush(now=AFTER)
    [event] = _events_for(f"api:{WINDOW_START}:198.51.100.15")
    assert event.payload["reasons"] == {"unknown": 6, "rate_limited": 1}


@pytest.mark.django_db
def test_a_database_failure_keeps_the_window_for_the_next_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    refusal_record(kind=RefusalKind.API, source="198.51.100.11", reason="missing")
    failed_before = metrics_snapshot()[Metric.AUDIT_REFUSAL_EVENTS_WRITE_FAILED]

    def database_down(**kwargs: Any) -> None:
        raise DatabaseError("the database went away")

    with monkeypatch.context() as patch:
        patch.setattr(audit_refusals, "audit_record", database_down)
        assert refusals_flush(now=AFTER) == 0

    assert _events_for(f"api:{WINDOW_START}:198.51.100.11") == []
    assert metrics_snapshot()[Metric.AUDIT_REFUSAL_EVENTS_WRITE_FAILED] == failed_before + 1
    assert refusals_flush(now=AFTER) == 1
    [event] = _events_for(f"api:{WINDOW_START}:198.51.100.11")
    assert event.payload["count"] == 1


@pytest.mark.django_db
def test_a_window_already_on_the_chain_is_not_audited_twice() -> None:
    # given: a flusher that committed the window's event, then died before deleting it
    refusal_record(kind=RefusalKind.API, source="198.51.100.12", reason="missing")
    key = refusals.window_key(RefusalKind.API, WINDOW_START, "198.51.100.12")
    fields = get_redis_connection("default").hgetall(key)
    assert audit_refusals._write_window(kind="api", start=WINDOW_START, source="198.51.100.12", fields=fields)

    # when: the next flush finds the same window
    assert refusals_flush(now=AFTER) == 1

    # then: still one event, and the window is gone
    assert len(_events_for(f"api:{WINDOW_START}:198.51.100.12")) == 1
    assert get_redis_connection("default").exists(key) == 0


@pytest.mark.django_db
def test_redis_down_the_refusal_stands_and_the_miss_is_logged_and_counted(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def down(alias: str) -> Any:
        raise RedisConnectionError("connection refused")

    monkeypatch.setattr(refusals, "get_redis_connection", down)
    monkeypatch.setattr(metrics, "get_redis_connection", down)
    unrecorded_before = metrics_snapshot()[Metric.AUDIT_REFUSALS_UNRECORDED]

    assert refusal_record(kind=RefusalKind.API, source="198.51.100.13", reason="missing") is None

    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and r.name == "paymenter.refusals"]
    assert errors == [
        "refused request not counted for the audit trail (api missing from 198.51.100.13): Redis unavailable"
    ]
    assert metrics_snapshot()[Metric.AUDIT_REFUSALS_UNRECORDED] == unrecorded_before + 1


@pytest.mark.django_db
def test_details_are_bounded_but_every_refusal_and_reason_is_counted() -> None:
    for number in range(refusals.MAX_DETAILS + 40):  # a flood of made-up key ids
        refusal_record(kind=RefusalKind.API, source="198.51.100.14", reason="unknown", detail=f"{number:012x}")

    refusals_flush(now=AFTER)

    [event] = _events_for(f"api:{WINDOW_START}:198.51.100.14")
    assert event.payload["count"] == refusals.MAX_DETAILS + 40
    assert event.payload["reasons"] == {"unknown": refusals.MAX_DETAILS + 40}
    assert len(event.payload["details"]) == refusals.MAX_DETAILS + 1
    assert event.payload["details"]["other"] == 40
