"""The production web server as configured in gunicorn.conf.py: sync workers, so a request
owns its process, and a refused oversized upload cannot spoil the next request."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from o2s.services import api_key_create
from paymenter import rls
from paymenter.principals import SystemPrincipal

pytestmark = pytest.mark.committed

BASE_DIR = Path(__file__).resolve().parents[2]
ADMIN = SystemPrincipal(label="test:gunicorn")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


STARTUP_SECONDS = 120


@pytest.fixture
def gunicorn(committed_db: None, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """gunicorn started as production starts it (the project's gunicorn.conf.py), one
    worker, on this test run's database and Redis (inherited environment)."""
    port = _free_port()
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, "-m", "gunicorn", "paymenter.wsgi:application", "--bind", f"127.0.0.1:{port}"],
            cwd=BASE_DIR,
            env={**os.environ, "WEB_CONCURRENCY": "1"},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            # a generous bound, not a timing assertion: a loaded CI machine may take a while
            deadline = time.monotonic() + STARTUP_SECONDS
            while True:
                try:
                    if requests.get(f"{url}/healthz", timeout=5).status_code == 200:
                        break
                except (requests.ConnectionError, requests.Timeout):  # not listening, or no worker yet
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise AssertionError(log.read_text()) from None
                    time.sleep(0.1)
            yield url, log
        finally:
            process.terminate()
            process.wait(timeout=20)


def test_gunicorn_runs_sync_workers_from_the_project_configuration(gunicorn: tuple[str, Path]) -> None:
    _url, log = gunicorn

    assert "Using worker: sync" in log.read_text()


def test_a_413_closes_its_connection_and_the_next_request_is_answered(gunicorn: tuple[str, Path]) -> None:
    url, _log = gunicorn
    with rls.acting_as(ADMIN):
        _, raw = api_key_create(principal=ADMIN, name="gunicorn test", allowed_networks=["127.0.0.1/32"])
    headers = {"Authorization": f"Bearer {raw}"}

    with requests.Session() as session:
        too_big = session.post(
            f"{url}/api/v1/customers/",
            data=b'{"name": "' + b"x" * 2_000_000 + b'"}',
            headers={**headers, "Content-Type": "application/json"},
            timeout=30,
        )
        following = session.get(f"{url}/api/v1/products/", headers=headers, timeout=30)

    assert too_big.status_code == 413
    assert too_big.json()["error"]["code"] == "payload_too_large"
    assert too_big.headers["Connection"] == "close"
    assert following.status_code == 200
