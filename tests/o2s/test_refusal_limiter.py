"""The per-address refusal limiter: refusals cost no database work, an address past the
limit is answered 429 by the gate in front of Django, and O2S's own key still gets through.

The gate is WSGI middleware (``paymenter.wsgi.application``), so these tests drive it
in-process with a stand-in behind it, and the live server (``live_url``, gate + Django) over HTTP.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
import requests
from redis.exceptions import ConnectionError as RedisConnectionError

from audit.models import AuditEvent
from audit.refusals import refusals_flush
from o2s.services import api_key_create
from paymenter import metrics, refusals, rls
from paymenter.metrics import Metric, metrics_snapshot
from paymenter.principals import SystemPrincipal
from paymenter.refusal_gate import RefusalGate
from paymenter.refusals import RefusalKind, refusal_record, refusal_vouch

ADMIN = SystemPrincipal(label="test:refusal-limiter")
WHOAMI = "/api/v1/whoami/"
FLOODER = "198.51.100.66"
O2S = "10.1.2.3"
LIMIT = 5
WINDOW_START = 1_800_000_000
INSIDE = WINDOW_START + 15.0
UNKNOWN_KEY = "pmk_0123456789ab_" + "a" * 52


@pytest.fixture(autouse=True)
def _pinned_window(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.REFUSAL_WINDOW_SECONDS = 60
    settings.REFUSAL_LIMIT_PER_WINDOW = LIMIT
    monkeypatch.setattr(refusals, "clock", lambda: INSIDE)


# --- the gate alone: a stand-in application behind it ------------------------------------------


class _Behind:
    """What the gate lets through; answers 401 like the API does to a bad key."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.calls += 1
        start_response("401 Unauthorized", [("Content-Type", "application/json")])
        return [b"{}"]


def _call(app: Any, *, path: str = WHOAMI, remote: str = FLOODER, key: str | None = None) -> tuple[int, dict[str, str]]:
    environ: dict[str, Any] = {"PATH_INFO": path, "REMOTE_ADDR": remote, "wsgi.input": io.BytesIO()}
    if key is not None:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    setup_testing_defaults(environ)
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        answer.update(status=int(status.split(maxsplit=1)[0]), headers=dict(headers))

    b"".join(app(environ, start_response))
    return answer["status"], answer["headers"]


def _refuse(times: int, source: str = FLOODER) -> None:
    for _ in range(times):
        refusal_record(kind=RefusalKind.API, source=source, reason="unknown")


@pytest.mark.django_db
def test_under_the_limit_everything_reaches_the_application_and_nothing_is_counted() -> None:
    behind = _Behind()
    _refuse(LIMIT)

    assert [_call(RefusalGate(behind))[0] for _ in range(3)] == [401, 401, 401]
    assert behind.calls == 3


@pytest.mark.django_db
def test_past_the_limit_the_gate_answers_429_without_the_application() -> None:
    behind = _Behind()
    _refuse(LIMIT + 1)
    limited_before = metrics_snapshot()[Metric.REFUSALS_RATE_LIMITED]

    status, headers = _call(RefusalGate(behind), key=UNKNOWN_KEY)

    assert (status, headers["Retry-After"], headers["Content-Type"]) == (429, "45", "application/json")
    assert behind.calls == 0  # no Django, no session, no database
    assert metrics_snapshot()[Metric.REFUSALS_RATE_LIMITED] == limited_before + 1


@pytest.mark.django_db
def test_a_vouched_credential_passes_a_flooded_address_and_other_paths_are_not_gated() -> None:
    behind = _Behind()
    _refuse(LIMIT + 1)
    refusal_vouch("pmk_o2s_key_that_worked")

    assert _call(RefusalGate(behind), key="pmk_o2s_key_that_worked")[0] == 401  # let through
    assert _call(RefusalGate(behind), key="pmk_another")[0] == 429
    assert _call(RefusalGate(behind), path="/admin/login/")[0] == 401  # not a gated path
    assert _call(RefusalGate(behind), remote=O2S)[0] == 401  # the limit is per address
    assert behind.calls == 3


@pytest.mark.django_db
def test_redis_down_the_gate_is_open(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def down(alias: str) -> Any:
        raise RedisConnectionError("connection refused")

    monkeypatch.setattr(refusals, "get_redis_connection", down)
    behind = _Behind()

    assert _call(RefusalGate(behind))[0] == 401
    assert behind.calls == 1
    assert "refusal gate open" in caplog.text


# --- the whole application, over HTTP -------------------------------------------------------------


@pytest.fixture
def live_app(live_url: str, settings: Any) -> str:
    """The whole application (gate + Django) over HTTP, on the test endpoints."""
    settings.ROOT_URLCONF = "tests.o2s.urls_auth"
    return live_url


def _get(url: str, key: str | None) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return requests.get(url + WHOAMI, headers=headers, timeout=10).status_code


def test_a_flood_is_refused_o2s_keeps_working_and_every_refusal_is_accounted_for(live_app: str, settings: Any) -> None:
    settings.TRUSTED_PROXY_COUNT = 0  # the live server sees 127.0.0.1 for everyone
    with rls.acting_as(ADMIN):
        _, o2s_key = api_key_create(principal=ADMIN, name="limiter test", allowed_networks=["127.0.0.1/32"])
    source = "127.0.0.1"
    assert _get(live_app, o2s_key) == 200  # O2S's key works (and is vouched for)

    flood = [_get(live_app, UNKNOWN_KEY) for _ in range(LIMIT + 10)] + [_get(live_app, None)]
    o2s_during = _get(live_app, o2s_key)

    assert flood == [401] * LIMIT + [429] * 11  # the one crossing the limit is 429 too
    assert o2s_during == 200
    refusals_flush(now=WINDOW_START + 120)
    with rls.acting_as(ADMIN):
        [event] = AuditEvent.objects.filter(object_id=f"api:{WINDOW_START}:{source}")
    assert event.payload["count"] == LIMIT + 11
    assert event.payload["reasons"] == {"unknown": LIMIT + 1, "rate_limited": 10}
    assert event.payload["details"] == {"0123456789ab": LIMIT + 1}


def test_redis_down_refusals_still_refuse_and_are_counted_as_unrecorded(
    live_app: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def down(alias: str) -> Any:
        raise RedisConnectionError("connection refused")

    monkeypatch.setattr(refusals, "get_redis_connection", down)
    monkeypatch.setattr(metrics, "get_redis_connection", down)
    unrecorded_before = metrics_snapshot()[Metric.AUDIT_REFUSALS_UNRECORDED]

    statuses = [_get(live_app, "garbage") for _ in range(3)]

    assert statuses == [401, 401, 401]
    assert metrics_snapshot()[Metric.AUDIT_REFUSALS_UNRECORDED] == unrecorded_before + 3
    misses = [
        r
        for r in caplog.records
        if r.levelno == logging.ERROR and r.getMessage().startswith("refused request not counted for the audit trail")
    ]
    assert len(misses) == 3
