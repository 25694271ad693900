"""Load for a benchmark: requests to a local server from client threads, checked and timed.

Every request goes out on a connection of its own, as clients of production's sync workers
do (they close every connection after the response; no keep-alive), so each endpoint pays
one TCP connect per request alike. Latency is measured client-side, from the connect to the
last byte of the response; throughput is the successful requests of a batch divided by its
wall time. A response is checked by its :class:`Target` (status, and what the body must
hold); a failed check, a transport error or a request not sent within the batch's time
limit is a failure, reported with samples.
"""

from __future__ import annotations

import http.client
import itertools
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

REQUEST_TIMEOUT_SECONDS = 30
MAX_FAILURE_SAMPLES = 5


class UnexpectedResponse(Exception):
    """A response that is not the one the endpoint must give."""


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes | None
    headers: dict[str, str]


@dataclass(frozen=True)
class Target:
    """One endpoint: the i-th request, and what its response must be. ``verify(number,
    status, body)`` returns the created object's id (``creates``: every success must have
    created a distinct one) or "", and raises :class:`UnexpectedResponse` otherwise."""

    name: str
    label: str
    build: Callable[[int], Request]
    verify: Callable[[int, int, bytes], str]
    creates: bool = False


def send(port: int, request: Request) -> tuple[int, bytes]:
    """One request to 127.0.0.1 on a connection of its own; the status and the body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_SECONDS)
    try:
        conn.request(request.method, request.path, body=request.body, headers=request.headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@dataclass
class Batch:
    target: str
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests only
    created_ids: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.wall_seconds if self.wall_seconds else 0.0


def run_batch(target: Target, *, port: int, requests: int, concurrency: int, max_seconds: float) -> Batch:
    """``requests`` requests (numbered from 0) from ``concurrency`` threads."""
    batch = Batch(target=target.name)
    numbers = itertools.count()  # next() on a count is atomic under the GIL
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds

    def client() -> None:
        while (number := next(numbers)) < requests:
            if time.monotonic() > deadline:
                with lock:
                    batch.failures.append(f"not sent: the batch exceeded {max_seconds:.0f}s")
                continue
            request = target.build(number)
            started = time.perf_counter()
            try:
                status, content = send(port, request)
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    batch.failures.append(f"{type(exc).__name__}: {exc}")
                continue
            elapsed = time.perf_counter() - started
            try:
                created = target.verify(number, status, content)
            except UnexpectedResponse as exc:
                with lock:
                    batch.failures.append(str(exc))
                continue
            with lock:
                if target.creates:
                    batch.created_ids.add(created)
                batch.latencies.append(elapsed)

    # Daemon threads: an interrupted run must not wait for clients of a server already stopped.
    threads = [
        threading.Thread(target=client, name=f"bench-{target.name}-{i}", daemon=True) for i in range(concurrency)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    batch.wall_seconds = time.perf_counter() - started
    return batch


def percentiles(latencies: list[float]) -> dict[str, float]:
    """p50/p90/p99, mean and max in milliseconds of ``latencies`` (seconds); {} below two."""
    if len(latencies) < 2:
        return {}
    ordered = sorted(latencies)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "p50_ms": round(cuts[49] * 1000, 2),
        "p90_ms": round(cuts[89] * 1000, 2),
        "p99_ms": round(cuts[98] * 1000, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


def summarize(target: Target, batches: list[Batch]) -> dict[str, Any]:
    """One endpoint's batches together: counts, failures (with samples), throughput (overall
    and per batch) and latency percentiles."""
    latencies = sorted(value for batch in batches for value in batch.latencies)
    failures = [failure for batch in batches for failure in batch.failures]
    if target.creates:
        created = set().union(*(batch.created_ids for batch in batches))
        if len(created) != len(latencies):  # a replayed or double-counted success
            failures.append(f"{len(latencies)} successes created {len(created)} distinct objects")
    wall = sum(batch.wall_seconds for batch in batches)
    summary: dict[str, Any] = {
        "label": target.label,
        "requests": len(latencies) + len(failures),
        "ok": len(latencies),
        "failed": len(failures),
        "failure_samples": sorted(set(failures))[:MAX_FAILURE_SAMPLES],
        "wall_seconds": round(wall, 3),
        "throughput_rps": round(len(latencies) / wall, 1) if wall else 0.0,
        "per_round_throughput_rps": [round(batch.throughput, 1) for batch in batches],
    }
    summary.update(percentiles(latencies))
    return summary


def ratios(endpoint: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """endpoint / baseline of two :func:`summarize` results; per round too (adjacent
    batches), to show how stable the ratio is."""
    result: dict[str, Any] = {}
    for key in ("p50_ms", "p99_ms", "mean_ms", "throughput_rps"):
        if endpoint.get(key) and baseline.get(key):
            result[key.removesuffix("_ms").removesuffix("_rps")] = round(endpoint[key] / baseline[key], 3)
    result["per_round_throughput"] = [
        round(mine / theirs, 3) if theirs else None
        for mine, theirs in zip(endpoint["per_round_throughput_rps"], baseline["per_round_throughput_rps"], strict=True)
    ]
    return result
