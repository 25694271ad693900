"""A card number in a URL never reaches a log in clear: gunicorn's access and error logs,
runserver's request lines (``django.server``) and ``django.request`` all go through the
redaction filter, which also decodes URL-encoded numbers (``4242+4242+...``)."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import runpy
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from gunicorn.config import Config

from paymenter.gunicorn_logging import RedactingGunicornLogger
from paymenter.logs import JsonFormatter, RedactionFilter
from paymenter.redaction import REDACTED_PAN, redact_text

REPO = Path(__file__).resolve().parents[2]
PANS = ("4242424242424242", "4242 4242 4242 4242", "4242-4242-4242-4242", "5555 5555 5555 4444", "378282246310005")


@pytest.mark.parametrize(
    ("line", "redacted"),
    [
        (
            "GET /api/v1/customers/?external_id=4242+4242+4242+4242&x=1 HTTP/1.1",
            "GET /api/v1/customers/?external_id=[REDACTED:PAN]&x=1 HTTP/1.1",
        ),
        ("GET /invoices/?q=4242%204242%204242%204242 HTTP/1.1", "GET /invoices/?q=[REDACTED:PAN] HTTP/1.1"),
        ("GET /x?q=%204242%204242%204242%204242 HTTP/1.1", "GET /x?q=[REDACTED:PAN] HTTP/1.1"),
        ("GET /x?q=4242%2D4242%2D4242%2D4242 HTTP/1.1", "GET /x?q=[REDACTED:PAN] HTTP/1.1"),
        ("GET /x?q=4242-4242-4242-4242 HTTP/1.1", "GET /x?q=[REDACTED:PAN] HTTP/1.1"),
        ("GET /x?q=378282246310005 HTTP/1.1", "GET /x?q=[REDACTED:PAN] HTTP/1.1"),
        ("GET /x?q=6011+1111+1111+1117#top HTTP/1.1", "GET /x?q=[REDACTED:PAN]#top HTTP/1.1"),
        ("GET /c/4242%204242%204242%204242/ HTTP/1.1", "GET /c/[REDACTED:PAN]/ HTTP/1.1"),
        # not a card number (Luhn fails), and a phone number with a plus: kept as they are
        ("GET /x?q=4242+4242+4242+4241 HTTP/1.1", "GET /x?q=4242+4242+4242+4241 HTTP/1.1"),
        ("GET /x?phone=%2B61+3+6200+0000 HTTP/1.1", "GET /x?phone=%2B61+3+6200+0000 HTTP/1.1"),
    ],
)
def test_card_numbers_in_urls_are_redacted_encoded_or_not(line: str, redacted: str) -> None:
    assert redact_text(line) == redacted


# --- Django: the configured console handler ------------------------------------------------


@pytest.fixture
def console() -> Iterator[io.StringIO]:
    """The console handler settings.LOGGING configured (its own filters and formatter),
    writing into a buffer for the test."""
    (handler,) = [h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter)]
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        yield stream
    finally:
        handler.setStream(previous)


# the test numbers, in clear (or URL-encoded): two groups of their digits in a row. Not bare
# "4242": a random request id or port may contain that by chance.
PAN_IN_CLEAR = re.compile(r"4242(?:[ +-]|%20)?4242|5555(?:[ +-]|%20)?5555")


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize("pan", PANS)
def test_a_runserver_request_line_with_a_card_number_is_logged_redacted(console: io.StringIO, pan: str) -> None:
    query = pan.replace(" ", "+")
    # what django.core.servers.basehttp.WSGIRequestHandler.log_message logs
    logging.getLogger("django.server").info(
        '"%s" %s %s', f"GET /api/v1/customers/?external_id={query} HTTP/1.1", "400", "120", extra={"status_code": 400}
    )

    (line,) = _lines(console)
    assert line["logger"] == "django.server"
    assert line["message"] == f'"GET /api/v1/customers/?external_id={REDACTED_PAN} HTTP/1.1" 400 120'


def test_django_loggers_have_no_handler_of_their_own_that_skips_redaction() -> None:
    for name in ("django", "django.server", "django.request"):
        assert logging.getLogger(name).handlers == [], name
        assert logging.getLogger(name).propagate is True, name


@pytest.mark.django_db
def test_a_refused_request_with_a_card_number_in_its_path_is_logged_redacted(console: io.StringIO) -> None:
    response = Client().get("/no-such-page/4242%204242%204242%204242/", {"card": "4242 4242 4242 4242"})

    assert response.status_code == 404
    messages = [line["message"] for line in _lines(console) if line["logger"] == "django.request"]
    assert messages == [f"Not Found: /no-such-page/{REDACTED_PAN}/"]
    assert not PAN_IN_CLEAR.search(console.getvalue())


# --- gunicorn: its own access and error logs ---------------------------------------------


def test_gunicorn_started_from_the_project_uses_the_redacting_logger() -> None:
    """The image's CMD (like any gunicorn started in the project root) reads gunicorn.conf.py,
    and overrides neither the logger class nor the access log."""
    dockerfile = (REPO / "Dockerfile").read_text().replace("\\\n", "")  # join continued lines
    match = re.search(r"^CMD (\[.*\])$", dockerfile, re.MULTILINE)
    assert match is not None
    command = json.loads(match.group(1))
    assert command[0] == "gunicorn"
    assert not {"--logger-class", "--access-logfile", "--config", "-c"} & set(command)

    namespace = runpy.run_path(str(REPO / "gunicorn.conf.py"))
    assert namespace["logger_class"] == "paymenter.gunicorn_logging.RedactingGunicornLogger"
    assert namespace["accesslog"] == "-"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(port: int, target: str, referer: str) -> bytes:
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
                connection.sendall(
                    f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nReferer: {referer}\r\n"
                    "Connection: close\r\n\r\n".encode()
                )
                return connection.recv(1024)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_gunicorn_access_log_redacts_a_card_number_in_the_query_string(tmp_path: Path) -> None:
    access_log = tmp_path / "access.log"
    port = _free_port()
    server = subprocess.Popen(  # noqa: S603 - a fixed command: gunicorn of this venv, on loopback
        [
            sys.executable,
            "-m",
            "gunicorn",
            "tests.paymenter.wsgi_probe:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--access-logfile",
            str(access_log),
            # the logger class comes from the project's gunicorn.conf.py (cwd), as in the image
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        answer = _get(
            port,
            "/api/v1/customers/?external_id=4242+4242+4242+4242&page=2",
            "https://o2s.example/orders?card=5555%205555%205555%204444",
        )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)

    assert answer.startswith(b"HTTP/1.1 204")
    (line,) = access_log.read_text().splitlines()
    assert '"GET /api/v1/customers/?external_id=[REDACTED:PAN]&page=2 HTTP/1.1" 204' in line
    assert '"https://o2s.example/orders?card=[REDACTED:PAN]"' in line
    assert not PAN_IN_CLEAR.search(line)


def test_the_redacting_logger_filters_both_gunicorn_loggers_once_across_reloads() -> None:
    config = Config()
    config.set("accesslog", "-")
    log = RedactingGunicornLogger(config)
    log.setup(config)  # a configuration reload runs setup again

    for logger in (log.access_log, log.error_log):
        assert [type(f) for f in logger.filters if isinstance(f, RedactionFilter)] == [RedactionFilter]
