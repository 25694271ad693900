"""The acting principal lives exactly as long as its request, whatever ends it.

A view that raises something DRF does not map (a bug, a ``DatabaseError``) used to leave
the API key's SYSTEM principal in the thread's context, so the next request on that
thread ran with system scope. These tests drive a real threaded WSGI server whose worker
threads are reused (like gunicorn's ``gthread``) and check what the next request sees.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from socketserver import BaseServer
from typing import Any
from wsgiref.simple_server import WSGIServer, make_server

import pytest
import requests
from django.db import connections

from o2s.services import api_key_create
from paymenter import rls
from paymenter.celery import platform_task
from paymenter.principals import SystemPrincipal
from tests.conftest import QuietHandler, live_wsgi_app
from tests.o2s.api_helpers import PRINCIPAL

pytestmark = pytest.mark.committed


class _PooledWSGIServer(WSGIServer):
    """Handles each connection on one of ``threads`` reused worker threads."""

    def __init__(self, *args: Any, threads: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pool = ThreadPoolExecutor(max_workers=threads)
        self.thread_names: set[str] = set()

    def process_request(self, request: Any, client_address: Any) -> None:
        self.pool.submit(self._handle, request, client_address)

    def _handle(self, request: Any, client_address: Any) -> None:
        self.thread_names.add(threading.current_thread().name)
        try:
            self.finish_request(request, client_address)
        finally:
            self.shutdown_request(request)


@pytest.fixture
def pooled_server(
    committed_db: None, settings: Any, request: pytest.FixtureRequest
) -> Iterator[tuple[str, BaseServer]]:
    settings.ROOT_URLCONF = "tests.rls.urls_scope"
    threads: int = request.param

    class Server(_PooledWSGIServer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, threads=threads, **kwargs)

    server = make_server("127.0.0.1", 0, live_wsgi_app(), server_class=Server, handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", server
    finally:
        server.shutdown()
        server.pool.shutdown(wait=True)
        server.server_close()
        thread.join(timeout=5)
        for conn in connections.all(initialized_only=True):
            conn.close()


@pytest.fixture
def api_key(committed_db: None) -> str:
    with rls.acting_as(SystemPrincipal(label="test:request-scope")):
        _, raw = api_key_create(
            principal=PRINCIPAL,
            name="request scope test",
            allowed_networks=["127.0.0.1/32"],
            rate_limit_per_minute=10_000,
        )
    return raw


@pytest.mark.parametrize("pooled_server", [1], indirect=True)
@pytest.mark.parametrize("failing_path", ["/api/v1/crash/", "/api/v1/database-error/"])
def test_an_unmapped_exception_leaves_no_scope_for_the_next_request_on_the_thread(
    pooled_server: tuple[str, Any], api_key: str, failing_path: str
) -> None:
    url, server = pooled_server
    with requests.Session() as session:
        failed = session.get(url + failing_path, headers={"Authorization": f"Bearer {api_key}"}, timeout=10)
        assert failed.status_code == 500
        assert failed.json()["error"]["code"] == "internal_error"

        report = session.get(url + "/scope/", timeout=10)

    assert report.json() == {"principal": None, "database_scope": ""}
    assert len(server.thread_names) == 1  # the same worker thread served both


@pytest.mark.parametrize("pooled_server", [4], indirect=True)
def test_many_failures_on_reused_threads_never_leak_a_scope(pooled_server: tuple[str, Any], api_key: str) -> None:
    url, server = pooled_server
    headers = {"Authorization": f"Bearer {api_key}"}

    def crash_then_report(index: int) -> dict[str, Any]:
        with requests.Session() as session:
            path = "/api/v1/crash/" if index % 2 else "/api/v1/database-error/"
            assert session.get(url + path, headers=headers, timeout=10).status_code == 500
            report: dict[str, Any] = session.get(url + "/scope/", timeout=10).json()
            return report

    with ThreadPoolExecutor(max_workers=8) as clients:
        reports = list(clients.map(crash_then_report, range(40)))

    assert reports == [{"principal": None, "database_scope": ""}] * 40
    assert len(server.thread_names) > 1  # the work really was spread over reused threads


def test_request_principal_set_outside_a_request_scope_is_refused() -> None:
    with pytest.raises(rls.ScopeOutsideRequestError):
        rls.request_principal_set(SystemPrincipal(label="nowhere"))
    assert rls.current_principal() is None


def test_a_request_scope_starts_empty_and_ends_with_what_was_there_before() -> None:
    outer = SystemPrincipal(label="outer")
    with rls.acting_as(outer):
        with rls.request_scope():
            assert rls.current_principal() is None
            rls.request_principal_set(SystemPrincipal(label="inner"))
            assert rls.current_principal() == SystemPrincipal(label="inner")
        assert rls.current_principal() == outer


_seen_in_task: list[object] = []


@platform_task(max_retries=0, time_limit=10)
def _report_principal_task() -> None:
    _seen_in_task.append(rls.current_principal())
    rls.request_principal_set(SystemPrincipal(label="set inside the task"))


def test_a_task_starts_with_no_principal_and_leaves_none_behind() -> None:
    caller = SystemPrincipal(label="whoever ran the worker before")
    with rls.acting_as(caller):
        _report_principal_task.apply()
        assert rls.current_principal() == caller
    assert _seen_in_task == [None]
