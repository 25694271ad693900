"""The local Stripe peer for benchmarks: localstripe and ``devtools.stripe_peer`` as subprocesses.

The same processes ``tests/stripe_peer_fixtures.py`` starts for the test suite (loopback ports
only, never the internet), without pytest: :func:`running_peer` starts both, waits until the
peer has registered its webhook at localstripe, and stops both on exit. :class:`PeerClient`
speaks the peer's control API and pays on its hosted checkout page as a browser would
(``StripePeer.pay``: card form, then the 3-D Secure challenge).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests

from benchmarks.invoice_create import BenchmarkError, free_port
from devtools.provision import BASE_DIR

HOST = "127.0.0.1"
STARTUP_TIMEOUT_SECONDS = 30
HTTP_TIMEOUT_SECONDS = 30
CARD_3DS = "4000002500003155"  # challenged (the app asks for 3-D Secure on every card), then authenticated
_FORM = re.compile(r'<form[^>]*action="(?P<action>[^"]+)"[^>]*>(?P<body>.*?)</form>', re.DOTALL)
_HIDDEN = re.compile(r'<input type="hidden" name="(?P<name>[^"]+)" value="(?P<value>[^"]*)">')


def _forms(html: str) -> list[tuple[str, str]]:
    return [(unescape(m["action"]), m["body"]) for m in _FORM.finditer(html)]


@dataclass(frozen=True)
class PeerClient:
    """The running peer: ``api_base`` is the app's ``STRIPE_API_BASE``."""

    api_base: str
    localstripe_url: str
    workdir: Path
    pids: tuple[int, ...] = ()  # localstripe's and the peer's processes

    def _control(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = requests.request(method, f"{self.api_base}/_peer/{path}", timeout=HTTP_TIMEOUT_SECONDS, **kwargs)
        response.raise_for_status()
        return response

    def configure(self, **changes: str | None) -> None:
        """``webhook_url``, ``webhook_secret``, ``delivery`` (deliver | hold | drop)."""
        self._control("POST", "config", json=changes)

    def events(self) -> list[dict[str, Any]]:
        """Every event so far (the peer's and localstripe's), complete."""
        events: list[dict[str, Any]] = self._control("GET", "events").json()
        return events

    def pay(self, session_url: str, card_number: str = CARD_3DS) -> str:
        """Pay on the hosted page (3-D Secure passed); the final redirect's ``Location``."""
        with requests.Session() as browser:
            page = browser.get(session_url, timeout=HTTP_TIMEOUT_SECONDS)
            page.raise_for_status()
            action = next((a for a, _ in _forms(page.text) if a.endswith("/pay")), None)
            if action is None:
                raise BenchmarkError(f"no payment form on {session_url}")
            response = browser.post(
                urljoin(session_url, action),
                data={"card_number": card_number},
                allow_redirects=False,
                timeout=HTTP_TIMEOUT_SECONDS,
            )
            location = response.headers.get("Location", "")
            if response.status_code == 303 and location.endswith("/3ds"):
                challenge = browser.get(urljoin(session_url, location), timeout=HTTP_TIMEOUT_SECONDS)
                challenge.raise_for_status()
                action, body = next((a, b) for a, b in _forms(challenge.text) if 'value="success"' in b)
                fields = {m["name"]: unescape(m["value"]) for m in _HIDDEN.finditer(body)}
                response = browser.post(
                    urljoin(session_url, action), data=fields, allow_redirects=False, timeout=HTTP_TIMEOUT_SECONDS
                )
                location = response.headers.get("Location", "")
            if response.status_code != 303:
                raise BenchmarkError(f"payment at the peer failed: HTTP {response.status_code}: {response.text[:300]}")
            return location


def _wait_healthy(url: str, processes: list[tuple[str, subprocess.Popen[bytes], Path]]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        for name, process, log in processes:
            if process.poll() is not None:
                raise BenchmarkError(f"{name} exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        with contextlib.suppress(requests.ConnectionError):
            if requests.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise BenchmarkError(f"the Stripe peer did not become healthy within {STARTUP_TIMEOUT_SECONDS}s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def running_peer(workdir: Path) -> Iterator[PeerClient]:
    """localstripe and the peer on free loopback ports, state and logs in ``workdir``
    (emptied first); both stopped on exit."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    localstripe_port, peer_port = free_port(), free_port()
    localstripe_url = f"http://{HOST}:{localstripe_port}"
    commands = {
        "localstripe": [
            *("-m", "devtools.localstripe_launcher", "--host", HOST, "--port", str(localstripe_port)),
            *("--state-dir", str(workdir / "localstripe"), "--from-scratch"),
        ],
        "stripe_peer": [
            *("-m", "devtools.stripe_peer", "--host", HOST, "--port", str(peer_port)),
            *("--localstripe-url", localstripe_url),
        ],
    }
    processes: list[tuple[str, subprocess.Popen[bytes], Path]] = []
    try:
        for name, args in commands.items():
            log = workdir / f"{name}.log"
            with log.open("wb") as out:  # a file, not a pipe nobody reads
                process = subprocess.Popen(  # noqa: S603 - sys.executable running our own modules
                    [sys.executable, *args], cwd=BASE_DIR, stdout=out, stderr=subprocess.STDOUT
                )
            processes.append((name, process, log))
        peer = PeerClient(
            api_base=f"http://{HOST}:{peer_port}",
            localstripe_url=localstripe_url,
            workdir=workdir,
            pids=tuple(process.pid for _, process, _ in processes),
        )
        _wait_healthy(f"{peer.api_base}/_peer/health", processes)
        yield peer
    finally:
        for _, process, _ in processes:
            _stop(process)
