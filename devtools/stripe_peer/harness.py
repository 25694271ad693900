"""The local Stripe test peer as a pair of processes, for the tests, the benchmarks and ``make run``.

:func:`running_stripe_peer` starts localstripe (through ``devtools.localstripe_launcher``,
GPL: its own process, never imported here) and ``devtools.stripe_peer`` on free loopback
ports, waits until the peer has registered its webhook at localstripe, and stops both on
exit. :class:`StripePeer` speaks the peer's control API and pays on its hosted checkout page
as a browser would (card form, then the 3-D Secure challenge). Both are reached over HTTP only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
STARTUP_TIMEOUT_SECONDS = 30
HTTP_TIMEOUT_SECONDS = 30
_FORM = re.compile(r'<form[^>]*action="(?P<action>[^"]+)"[^>]*>(?P<body>.*?)</form>', re.DOTALL)
_HIDDEN = re.compile(r'<input type="hidden" name="(?P<name>[^"]+)" value="(?P<value>[^"]*)">')


class PaymentFailed(AssertionError):
    """The hosted checkout page reported a failed payment (declined or failed 3-D Secure)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _forms(html: str) -> list[tuple[str, str]]:
    return [(unescape(m["action"]), m["body"]) for m in _FORM.finditer(html)]


@dataclasses.dataclass(frozen=True)
class StripePeer:
    """The running peer: ``api_base`` is the app's ``STRIPE_API_BASE``."""

    api_base: str
    localstripe_url: str
    workdir: Path
    pids: tuple[int, ...] = ()  # localstripe's and the peer's processes

    def _control(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        resp = requests.request(method, f"{self.api_base}/_peer/{path}", timeout=HTTP_TIMEOUT_SECONDS, **kwargs)
        resp.raise_for_status()
        return resp

    def configure(
        self, webhook_url: str | None = None, webhook_secret: str | None = None, delivery: str | None = None
    ) -> None:
        """Change what is given (``None`` leaves a setting as it is; ``reset`` restores all)."""
        given = {"webhook_url": webhook_url, "webhook_secret": webhook_secret, "delivery": delivery}
        self._control("POST", "config", json={k: v for k, v in given.items() if v is not None})

    def release(self) -> list[str]:
        """Deliver the held events now, in order; returns their ids."""
        ids: list[str] = self._control("POST", "release").json()
        return ids

    def events(self) -> list[dict[str, Any]]:
        """Every event so far (the peer's and localstripe's), complete, for assertions or replay."""
        events: list[dict[str, Any]] = self._control("GET", "events").json()
        return events

    def reset(self) -> None:
        self._control("POST", "reset")

    def checkout_url(self, session_id: str) -> str:
        return f"{self.api_base}/checkout/{session_id}"

    def pay(self, session_url: str, card_number: str = "4000002500003155", authenticate: bool = True) -> str:
        """Pay on the hosted page as a browser would; the final redirect's ``Location``.

        The redirect to the app's success_url is not followed (the test decides what to do).
        Raises :class:`PaymentFailed` with the page's message if the payment failed.
        """
        with requests.Session() as browser:
            page = browser.get(session_url, timeout=HTTP_TIMEOUT_SECONDS)
            page.raise_for_status()
            action = next((a for a, _ in _forms(page.text) if a.endswith("/pay")), None)
            if action is None:
                raise PaymentFailed(f"no payment form on {session_url}: {page.text}")
            resp = browser.post(
                urljoin(session_url, action),
                data={"card_number": card_number},
                allow_redirects=False,
                timeout=HTTP_TIMEOUT_SECONDS,
            )
            location = resp.headers.get("Location", "")
            if resp.status_code == 303 and location.endswith("/3ds"):
                challenge = browser.get(urljoin(session_url, location), timeout=HTTP_TIMEOUT_SECONDS)
                challenge.raise_for_status()
                outcome = "success" if authenticate else "fail"
                action, body = next((a, b) for a, b in _forms(challenge.text) if f'value="{outcome}"' in b)
                fields = {m["name"]: unescape(m["value"]) for m in _HIDDEN.finditer(body)}
                resp = browser.post(
                    urljoin(session_url, action), data=fields, allow_redirects=False, timeout=HTTP_TIMEOUT_SECONDS
                )
                location = resp.headers.get("Location", "")
            if resp.status_code != 303:
                message = re.search(r'id="(?:failure|error)"[^>]*>(?P<m>[^<]*)<', resp.text)
                raise PaymentFailed(unescape(message["m"]) if message else f"HTTP {resp.status_code}: {resp.text}")
            return location


def _wait_healthy(url: str, processes: list[tuple[str, subprocess.Popen[bytes], Path]]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        for name, process, log in processes:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    outputs = "\n".join(f"--- {name}:\n{log.read_text(errors='replace')}" for name, _, log in processes)
    raise RuntimeError(f"the Stripe peer did not become healthy in {STARTUP_TIMEOUT_SECONDS}s\n{outputs}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def running_stripe_peer(workdir: Path) -> Iterator[StripePeer]:
    """localstripe and the peer on free loopback ports, state and logs in ``workdir`` (emptied
    first); both stopped on exit."""
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
            with log.open("wb") as out:  # a file, not a pipe nobody reads (a full pipe blocks the child)
                process = subprocess.Popen([sys.executable, *args], cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
            processes.append((name, process, log))
        peer = StripePeer(
            api_base=f"http://{HOST}:{peer_port}",
            localstripe_url=localstripe_url,
            workdir=workdir,
            pids=tuple(process.pid for _, process, _ in processes),
        )
        # The peer is healthy once it has registered its webhook at localstripe: both are up.
        _wait_healthy(f"{peer.api_base}/_peer/health", processes)
        yield peer
    finally:
        for _, process, _ in processes:
            _stop(process)
