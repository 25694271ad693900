"""/healthz (process up) and /readyz (PostgreSQL and Redis reachable)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import OperationalError, connections
from django.test import Client, override_settings

from paymenter import health

CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
def redis_unreachable() -> Iterator[None]:
    caches: dict[str, Any] = {name: dict(config) for name, config in settings.CACHES.items()}
    caches["default"]["LOCATION"] = CLOSED_PORT_REDIS
    caches["default"]["OPTIONS"] = {**caches["default"].get("OPTIONS", {}), "SOCKET_CONNECT_TIMEOUT": 1}
    with override_settings(CACHES=caches):  # setting_changed drops the cached cache clients
        yield


def test_healthz_answers_without_touching_the_database(client: Client) -> None:
    # pytest-django blocks database access here: a query would fail the test
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_readyz_is_ready_when_database_and_redis_answer(client: Client) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


@pytest.mark.django_db
@pytest.mark.usefixtures("redis_unreachable")
def test_readyz_is_503_when_redis_is_unreachable(client: Client) -> None:
    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "checks": {"database": "ok", "redis": "unavailable"}}


@pytest.mark.django_db
def test_readyz_is_503_when_the_database_fails(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    # given: the default connection cannot open a cursor (what a dead server looks like)
    def refuse(*args: object, **kwargs: object) -> None:
        raise OperationalError("connection refused by 10.0.0.5 for user secret_user")

    monkeypatch.setattr(connections["default"], "cursor", refuse)

    # when
    response = client.get("/readyz")

    # then: the dependency is named, the error text does not leave the process
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "checks": {"database": "unavailable", "redis": "ok"}}
    assert b"secret_user" not in response.content


@pytest.mark.parametrize("url", ["/healthz", "/readyz"])
def test_probes_are_get_only(client: Client, url: str) -> None:
    response = client.post(url)

    assert response.status_code == 405


def test_probes_need_no_authentication() -> None:
    # DRF's IsAuthenticated default does not apply: these are plain Django views
    assert not hasattr(health.healthz, "cls")
    assert not hasattr(health.readyz, "cls")
