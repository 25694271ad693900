"""CPU time per process group over a stretch of a benchmark (``psutil``, user + system).

On a machine with a few cores a server's throughput is set by the CPU all its parts spend
per request: the application's Python, PostgreSQL's backends, Redis, the load generator
itself. :class:`CpuMeter` samples the CPU times of named groups of processes (each group
a callable returning its current pids) before and after a batch; the difference divided
by the requests is "CPU ms per request" for each part. ``machine`` is every core's busy time
(other users' work included); ``unaccounted`` is what the named groups do not explain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import psutil
import psycopg

PidSource = Callable[[], set[int]]


@dataclass(frozen=True)
class Sample:
    per_group: dict[str, dict[int, float]]  # group -> pid -> CPU seconds
    machine_busy: float  # seconds, all cores
    everyone: dict[int, tuple[float, str]] | None = None  # pid -> (CPU seconds, command), if asked


def _cpu_seconds(pid: int) -> float | None:
    try:
        times = psutil.Process(pid).cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    return float(times.user + times.system)


def _reaped_seconds(pid: int) -> float | None:
    try:
        times = psutil.Process(pid).cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    return float(times.children_user + times.children_system)


def _machine_busy() -> float:
    """Busy seconds of every core: user, nice, system and interrupt time (not idle, iowait,
    steal; guest time is already part of user time)."""
    times = psutil.cpu_times()
    fields = ("user", "nice", "system", "irq", "softirq")
    return sum(float(getattr(times, name, 0.0)) for name in fields)


def _everyone() -> dict[int, tuple[float, str]]:
    result: dict[int, tuple[float, str]] = {}
    for process in psutil.process_iter(["cmdline", "name"]):
        try:
            times = process.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        command = " ".join(process.info.get("cmdline") or [process.info.get("name") or "?"])
        result[process.pid] = (float(times.user + times.system), command[:120])
    return result


def process_tree(pid: int) -> set[int]:
    """``pid`` and its descendants (a gunicorn master and its workers, a Celery worker pool)."""
    try:
        parent = psutil.Process(pid)
        return {pid, *(child.pid for child in parent.children(recursive=True))}
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return set()


class CpuMeter:
    """``groups``: name -> the pids whose own CPU time counts. ``reaped``: name -> a pid whose
    exited children's CPU time counts (PostgreSQL's postmaster: connections that were opened and
    closed in between, each one a process of its own)."""

    def __init__(self, groups: Mapping[str, PidSource], reaped: Mapping[str, int] | None = None) -> None:
        self.groups = dict(groups)
        self.reaped = dict(reaped or {})

    def sample(self, *, everyone: bool = False) -> Sample:
        """The groups' CPU times; with ``everyone``, every process's too (for :meth:`others`)."""
        per_group: dict[str, dict[int, float]] = {}
        for name, source in self.groups.items():
            try:
                pids = source()
            except Exception:  # noqa: BLE001 - a group that cannot be listed just reads as zero
                pids = set()
            per_group[name] = {pid: seconds for pid in pids if (seconds := _cpu_seconds(pid)) is not None}
        for name, parent in self.reaped.items():
            seconds = _reaped_seconds(parent)
            per_group[name] = {parent: seconds} if seconds is not None else {}
        return Sample(per_group=per_group, machine_busy=_machine_busy(), everyone=_everyone() if everyone else None)

    @staticmethod
    def others(before: Sample, after: Sample, *, limit: int = 5) -> list[dict[str, Any]]:
        """The processes outside every group that used the most CPU in between (what
        ``unaccounted`` is made of, as far as processes go: other users' work, short-lived
        processes); needs two samples taken with ``everyone``."""
        if before.everyone is None or after.everyone is None:
            return []
        known = {pid for pids in after.per_group.values() for pid in pids}
        known |= {pid for pids in before.per_group.values() for pid in pids}
        used = [
            (seconds - before.everyone.get(pid, (0.0, ""))[0], pid, command)
            for pid, (seconds, command) in after.everyone.items()
            if pid not in known
        ]
        used.sort(reverse=True)
        return [
            {"pid": pid, "cpu_seconds": round(seconds, 2), "command": command}
            for seconds, pid, command in used[:limit]
            if seconds >= 0.01
        ]

    @staticmethod
    def seconds(before: Sample, after: Sample) -> dict[str, float]:
        """CPU seconds each group spent between the two samples (a process that started in
        between counts from zero), plus ``machine`` and ``unaccounted``."""
        result: dict[str, float] = {}
        for name, pids in after.per_group.items():
            earlier = before.per_group.get(name, {})
            result[name] = sum(max(0.0, seconds - earlier.get(pid, 0.0)) for pid, seconds in pids.items())
        result["machine"] = max(0.0, after.machine_busy - before.machine_busy)
        result["unaccounted"] = max(0.0, result["machine"] - sum(v for k, v in result.items() if k != "machine"))
        return result


def per_request_ms(seconds: Mapping[str, float], requests: int) -> dict[str, Any]:
    """CPU ms per request for each group (``requests`` > 0)."""
    return {name: round(value / requests * 1000, 3) for name, value in seconds.items()} if requests else {}


def add(total: dict[str, float], more: Mapping[str, float]) -> None:
    for name, value in more.items():
        total[name] = total.get(name, 0.0) + value


# --- Process groups of a benchmark run (PostgreSQL and Redis found through their servers) -------------


def postmaster_pid(monitor: psycopg.Connection[Any]) -> int:
    """The PostgreSQL server's main process (the parent of ``monitor``'s backend): its reaped
    children's CPU time is that of the connections opened and closed in between."""
    row = monitor.execute("SELECT pg_backend_pid()").fetchone()
    return int(psutil.Process(int(row[0])).ppid()) if row else 0


def postgres_pids(monitor: psycopg.Connection[Any], database: str) -> PidSource:
    """The backends connected to ``database`` (``monitor``'s own left out) plus the server's
    background processes (WAL writer, checkpointer, autovacuum, ...), listed afresh on each call."""

    def source() -> set[int]:
        rows = monitor.execute(
            "SELECT pid FROM pg_stat_activity WHERE (datname = %s AND pid <> pg_backend_pid())"
            " OR backend_type <> 'client backend'",
            [database],
        ).fetchall()
        return {int(row[0]) for row in rows}

    return source


def redis_server_pid(url: str) -> int:
    """The Redis server's pid, as it reports it (a shared server's CPU includes others' work)."""
    import redis  # noqa: PLC0415 - only the runs that measure Redis need a client

    client = redis.Redis.from_url(url)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()
