"""Operational counters: shared across processes in Redis, kept in the process when Redis
is down, and exposed at /metrics to the scraper's networks only."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from redis.exceptions import ConnectionError as RedisConnectionError

from paymenter import metrics
from paymenter.metrics import Metric, metric_increment, metrics_snapshot


def _value(text: str, metric: Metric) -> int:
    [line] = [line for line in text.splitlines() if line.startswith(f"paymenter_{metric.value} ")]
    return int(line.split()[1])


def test_counters_are_exposed_in_prometheus_text_to_the_local_scraper() -> None:
    before = metrics_snapshot()[Metric.INVOICE_CHECKSUM_MISMATCHES]
    metric_increment(Metric.INVOICE_CHECKSUM_MISMATCHES, 2)

    response = Client().get("/metrics", REMOTE_ADDR="127.0.0.1")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    text = response.content.decode()
    assert f"# TYPE paymenter_{Metric.INVOICE_CHECKSUM_MISMATCHES.value} counter" in text
    assert _value(text, Metric.INVOICE_CHECKSUM_MISMATCHES) == before + 2
    assert {line.split()[0] for line in text.splitlines() if not line.startswith("#")} == {
        f"paymenter_{metric.value}" for metric in Metric
    }


def test_metrics_are_not_found_from_elsewhere() -> None:
    assert Client().get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 404


def test_with_redis_down_an_increment_is_kept_in_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    before = metrics_snapshot()[Metric.REFUSALS_RATE_LIMITED]

    def down(alias: str) -> Any:
        raise RedisConnectionError("connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(metrics, "get_redis_connection", down)
        kept_before = metrics_snapshot()[Metric.REFUSALS_RATE_LIMITED]  # this process's count only
        metric_increment(Metric.REFUSALS_RATE_LIMITED)
        assert metrics_snapshot()[Metric.REFUSALS_RATE_LIMITED] == kept_before + 1

    assert metrics_snapshot()[Metric.REFUSALS_RATE_LIMITED] == before + 1  # shared + kept locally
