"""gunicorn for a benchmark, started as production starts it, and stopped with all it forked.

:class:`ProductionServer` runs ``python -m gunicorn paymenter.wsgi:application --bind
127.0.0.1:<port>`` from the project root and nothing else on the command line, so
``gunicorn.conf.py`` applies exactly as in the image (docs/operations.md, "Web server and
worker model"): sync workers, ``WEB_CONCURRENCY`` of them (default 4 x cores + 1), no
keep-alive, worker recycling every ~2,000 requests (``max_requests`` with jitter), the
redacting access log on stdout. What differs from production is only what the environment
says: ``DB_POOL_MAX_SIZE`` is set to production's 2 (the development default is 8), and the
caller's environment picks the settings module and the services. stdout and stderr (access
log, application log) go to a file, as production's go to a collector.

``benchmarks.refusal_flood`` and ``benchmarks.webhook_ingest --server sync`` start the same
server with their own code; this module is the shared version.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from benchmarks.errors import BenchmarkError
from devtools.provision import BASE_DIR

PRODUCTION_POOL_MAX_SIZE = 2  # paymenter.settings: DB_POOL_MAX_SIZE outside development and tests
SERVER_START_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 15


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_serving(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchmarkError(f"gunicorn exited with status {process.returncode} while starting")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.2)
    raise BenchmarkError(f"gunicorn did not answer /healthz within {SERVER_START_TIMEOUT_SECONDS}s")


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def default_workers() -> int:
    """gunicorn.conf.py's default (``WEB_CONCURRENCY`` unset): 4 x cores + 1."""
    return 4 * (os.cpu_count() or 1) + 1


@dataclass(frozen=True)
class ProductionServer:
    """gunicorn as the image starts it. ``workers``: ``WEB_CONCURRENCY`` (None: the
    configuration's default); ``pool_max_size``: ``DB_POOL_MAX_SIZE``."""

    workers: int | None = None
    pool_max_size: int = PRODUCTION_POOL_MAX_SIZE

    @property
    def worker_count(self) -> int:
        return self.workers if self.workers is not None else default_workers()

    def command(self, port: int) -> list[str]:
        # no flags: gunicorn.conf.py (read from the working directory) is the configuration
        return [sys.executable, "-m", "gunicorn", "paymenter.wsgi:application", "--bind", f"127.0.0.1:{port}"]

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        result = dict(env)
        result["DB_POOL_MAX_SIZE"] = str(self.pool_max_size)
        if self.workers is None:
            result.pop("WEB_CONCURRENCY", None)
        else:
            result["WEB_CONCURRENCY"] = str(self.workers)
        return result

    def describe(self) -> dict[str, object]:
        return {
            "command": "gunicorn paymenter.wsgi:application --bind 127.0.0.1:<port> (cwd: project root)",
            "configuration": "gunicorn.conf.py: sync workers, no keep-alive, max_requests 2000 + jitter 200",
            "workers": self.worker_count,
            "db_pool_max_size": self.pool_max_size,
        }


@dataclass
class RunningServer:
    port: int
    process: subprocess.Popen[bytes]
    logfile: Path
    workers_seen: set[int] = field(default_factory=set)

    def workers(self) -> set[int]:
        """The current worker pids (the master's children)."""
        try:
            return {child.pid for child in psutil.Process(self.process.pid).children()}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return set()

    def note_workers(self) -> None:
        """Remember the workers alive now; :meth:`replaced_workers` counts the ones recycled."""
        self.workers_seen |= self.workers()

    def replaced_workers(self, expected: int) -> int:
        """Workers started after the first ``expected`` (recycled by ``max_requests`` or
        restarted after a crash), as far as :meth:`note_workers` saw them."""
        return max(0, len(self.workers_seen) - expected)


@contextlib.contextmanager
def running_production_server(
    server: ProductionServer, env: Mapping[str, str], logfile: Path
) -> Iterator[RunningServer]:
    """The server in its own process group on a free port of 127.0.0.1, logging to
    ``logfile``; stopped (group-wide) on exit, also on error."""
    port = free_port()
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with logfile.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - constant argv
            server.command(port),
            env=server.environment(env),
            cwd=BASE_DIR,
            start_new_session=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        try:
            wait_until_serving(process, port)
        except BenchmarkError as exc:
            raise BenchmarkError(f"{exc}\n{logfile.read_text(errors='replace')[-4000:]}") from None
        running = RunningServer(port=port, process=process, logfile=logfile)
        running.note_workers()
        yield running
    finally:
        stop_process_group(process)
