"""The test doubles as child processes, for their harnesses (:mod:`devtools.stripe_peer.harness`,
:mod:`devtools.paypal_peer.harness`).

A double runs as ``python -m <module>`` from the repository root on a free loopback port, its
output in a log file of the harness's folder; the harness waits until its health URL answers 200
(with every child's log in the error when one exits or time runs out), and stops the children on
exit, terminating first and killing a child that does not stop.
"""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
STARTUP_TIMEOUT_SECONDS = 30
STOP_TIMEOUT_SECONDS = 10


def free_port() -> int:
    """A port free on :data:`HOST` now (the child binds it a moment later: not reserved)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclasses.dataclass(frozen=True)
class Child:
    """A started double: its name in errors and log file, the process, and its output."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_module(name: str, module: str, args: Sequence[str], *, workdir: Path) -> Child:
    """``python -m module args...`` from the repository root, its output in ``workdir/<name>.log``:
    a file, not a pipe nobody reads (a full pipe blocks the child)."""
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", module, *args], cwd=REPO, stdout=out, stderr=subprocess.STDOUT
        )
    return Child(name, process, log)


def wait_healthy(url: str, children: Sequence[Child], *, what: str) -> None:
    """Return once ``url`` answers 200; raise with the children's output if one exits first or
    :data:`STARTUP_TIMEOUT_SECONDS` pass. ``what`` names the double in that error."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        for child in children:
            if child.process.poll() is not None:
                raise RuntimeError(f"{child.name} exited with {child.process.returncode}:\n{child.output()}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    outputs = "\n".join(f"--- {child.name}:\n{child.output()}" for child in children)
    raise RuntimeError(f"{what} did not become healthy in {STARTUP_TIMEOUT_SECONDS}s\n{outputs}")
