"""``python -m benchmarks.refusal_flood``: O2S keeps invoicing while a flood of bad keys hits the API.

Not a test: a measurement with pass criteria, run by ``make bench-flood`` (docs/performance.md).

One run, one gunicorn started as production starts it (``gunicorn.conf.py``: sync workers;
``DB_POOL_MAX_SIZE`` connections per worker at most), on a fresh ``paymenter_bench``
database (the same provisioning as ``benchmarks.invoice_create``):

1. **idle**: the authenticated client (O2S: a real key, ``POST /api/v1/invoices/``, one at
   a time) creates invoices alone; its p50 is the baseline of this run;
2. **flood**: ``--flood`` unauthenticated requests (no header, malformed keys, well-formed
   unknown keys) from ``--concurrency`` clients, from the *same address* as O2S (the worst
   case for a per-address limiter), while the authenticated client keeps creating
   invoices; a sampler counts the app role's open database connections every 50 ms;
3. **accounting**: once the refusal windows have closed, the aggregated audit events are
   flushed and summed.

Pass criteria (exit status 1 otherwise): no 5xx for the authenticated client; its flood
p50 within 2x of its idle p50; every refused flood request accounted for in the
aggregated ``requests.refused`` events; open connections never above the bound
(workers x ``DB_POOL_MAX_SIZE``). Results go to ``benchmarks/results/refusal_flood.json``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import multiprocessing
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from benchmarks.invoice_create import (
    BENCH_DATABASE,
    INVOICE_PATH,
    MANAGE,
    PRODUCT_CODE,
    BenchmarkError,
    child_environment,
    free_port,
    git_revision,
    log,
    prepare_environment,
    run_fixtures_child,
    stop_process_group,
    wait_until_serving,
)
from devtools.provision import BASE_DIR
from paymenter import dbroles

RESULTS_FILE = BASE_DIR / "benchmarks" / "results" / "refusal_flood.json"
WINDOW_SECONDS = 5  # short refusal windows, so the accounting can close them within the run
CLOSE_GRACE_SECONDS = 2  # audit.refusals.CLOSE_GRACE_SECONDS (not imported: no Django here)
_TIMEOUT_SECONDS = 30


@dataclass
class ClientLog:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


def _post_invoice(port: int, fixtures: dict[str, str], log_: ClientLog) -> None:
    body = json.dumps(
        {
            "customer": fixtures["customer_id"],
            "currency": "AUD",
            "lines": [{"product_code": PRODUCT_CODE, "quantity": 1}],
        }
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {fixtures['api_key']}",
        "Idempotency-Key": str(uuid.uuid4()),
    }
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=_TIMEOUT_SECONDS)
    started = time.perf_counter()
    try:
        conn.request("POST", INVOICE_PATH, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
    except (OSError, http.client.HTTPException) as exc:
        log_.errors.append(f"{type(exc).__name__}: {exc}")
        return
    finally:
        conn.close()
    log_.statuses[response.status] += 1
    if response.status == 201:
        log_.latencies.append(time.perf_counter() - started)


def _garbage_headers(number: int) -> dict[str, str]:
    """No header, a malformed key, or a well-formed key that does not exist, in turn."""
    kind = number % 3
    if kind == 0:
        return {}
    if kind == 1:
        return {"Authorization": f"Bearer garbage-{number}"}
    secret = base64.b32encode(secrets.token_bytes(32)).decode().rstrip("=").lower()
    return {"Authorization": f"Bearer pmk_{secrets.token_hex(6)}_{secret}"}


def _flood(port: int, total: int, concurrency: int) -> ClientLog:
    result = ClientLog()
    lock = threading.Lock()
    numbers = iter(range(total))

    def client() -> None:
        for number in numbers:  # next() on a range iterator is atomic under the GIL
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=_TIMEOUT_SECONDS)
            try:
                conn.request("GET", INVOICE_PATH, headers=_garbage_headers(number))
                response = conn.getresponse()
                response.read()
                with lock:
                    result.statuses[response.status] += 1
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    result.errors.append(f"{type(exc).__name__}: {exc}")
            finally:
                conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


def _flood_process(port: int, total: int, concurrency: int, results: multiprocessing.Queue[ClientLog]) -> None:
    results.put(_flood(port, total, concurrency))


@contextlib.contextmanager
def _connection_sampler(admin_url: str) -> Iterator[list[int]]:
    """Counts the application role's connections to the bench database every 50 ms."""
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            while not stop.is_set():
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND datname = %s",
                    [dbroles.APP_ROLE, BENCH_DATABASE],
                ).fetchone()
                samples.append(int(row[0]) if row else 0)
                stop.wait(0.05)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join(timeout=5)


def _refusal_events(env: dict[str, str], owner_url: str) -> list[dict[str, Any]]:
    """Flush the closed windows (as beat would); the payloads of every aggregated event."""
    flush = "from audit.refusals import refusals_flush; print(refusals_flush())"
    subprocess.run([*MANAGE, "shell", "-c", flush], env=env, check=True, capture_output=True)  # noqa: S603 - constant argv
    with psycopg.connect(owner_url, autocommit=False) as conn:
        conn.execute("SELECT set_config('paymenter.scope', 'system', true)")
        rows = conn.execute("SELECT payload FROM audit_auditevent WHERE action = 'requests.refused'").fetchall()
    return [payload for (payload,) in rows]


def _p(values: list[float], q: int) -> float:
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000, 1) if len(values) > 1 else 0.0


def run(args: argparse.Namespace) -> int:  # noqa: PLR0915 - one straight script of phases
    environment = prepare_environment(dict(os.environ))
    try:
        for note in environment.notes:
            log(note)
        env = child_environment(environment)
        env.update(
            REFUSAL_WINDOW_SECONDS=str(WINDOW_SECONDS),
            DB_POOL_MAX_SIZE=str(args.pool_max_size),
            WEB_CONCURRENCY=str(args.workers),
        )
        owner_url = environment.variables["DATABASE_OWNER_URL"]
        admin_url = environment.scratch_database[0] if environment.scratch_database else owner_url
        subprocess.run([*MANAGE, "migrate", "--database", "owner", "--noinput", "-v", "0"], env=env, check=True)  # noqa: S603 - constant argv
        fixtures = run_fixtures_child(env)
        bound = args.workers * args.pool_max_size
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "paymenter.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--access-logfile",
            "/dev/null",
            "--log-level",
            "warning",
        ]
        log(f"starting gunicorn from gunicorn.conf.py ({args.workers} sync workers, pool <= {args.pool_max_size})")
        process = subprocess.Popen(command, env=env, cwd=BASE_DIR, start_new_session=True)  # noqa: S603 - constant argv
        try:
            wait_until_serving(process, port)
            warmup = ClientLog()
            for _ in range(10):
                _post_invoice(port, fixtures, warmup)
            idle = ClientLog()
            for _ in range(args.idle):
                _post_invoice(port, fixtures, idle)
            log(f"idle: {len(idle.latencies)} invoices, p50 {_p(idle.latencies, 50)} ms")

            during = ClientLog()
            # the flood runs in a process of its own: its threads must not slow the measuring
            # client down through this interpreter's GIL, only through the server
            results: multiprocessing.Queue[ClientLog] = multiprocessing.get_context("spawn").Queue()
            flooder = multiprocessing.get_context("spawn").Process(
                target=_flood_process, args=(port, args.flood, args.concurrency, results), daemon=True
            )
            with _connection_sampler(admin_url) as samples:
                wall = time.perf_counter()
                flooder.start()
                while flooder.is_alive() and results.empty():
                    _post_invoice(port, fixtures, during)
                flood = results.get(timeout=120)
                wall = time.perf_counter() - wall
                flooder.join(timeout=30)
            log(f"flood: {args.flood} requests in {wall:.1f}s, statuses {dict(flood.statuses)}")
        finally:
            stop_process_group(process)

        time.sleep(WINDOW_SECONDS + CLOSE_GRACE_SECONDS + 1)  # every flood window is closed
        refused = sum(count for status, count in flood.statuses.items() if status in (401, 403, 429))
        events = _refusal_events(env, owner_url)  # a fresh database: only this run's
        accounted = sum(int(payload["count"]) for payload in events)
        reasons: Counter[str] = Counter()
        for payload in events:
            reasons.update(payload["reasons"])
        server_errors = sum(count for status, count in during.statuses.items() if status >= 500)
        idle_p50, flood_p50 = _p(idle.latencies, 50), _p(during.latencies, 50)
        result: dict[str, Any] = {
            "measured_at": datetime.now(tz=UTC).isoformat(timespec="seconds"),
            "revision": git_revision(),
            "machine": {"cpus": os.cpu_count(), "load_at_start": [round(v, 2) for v in os.getloadavg()]},
            "server": {"workers": args.workers, "worker_class": "sync", "db_pool_max_size": args.pool_max_size},
            "flood": {
                "requests": args.flood,
                "concurrency": args.concurrency,
                "wall_seconds": round(wall, 2),
                "statuses": dict(sorted(flood.statuses.items())),
                "errors": flood.errors[:5],
            },
            "authenticated_client": {
                "idle": {"invoices": len(idle.latencies), "p50_ms": idle_p50, "p99_ms": _p(idle.latencies, 99)},
                "during_flood": {
                    "invoices": len(during.latencies),
                    "statuses": dict(sorted(during.statuses.items())),
                    "p50_ms": flood_p50,
                    "p99_ms": _p(during.latencies, 99),
                    "errors": during.errors[:5],
                },
                "p50_ratio": round(flood_p50 / idle_p50, 2) if idle_p50 else None,
            },
            "refusals": {
                "refused_responses": refused,
                "accounted_in_audit_events": accounted,
                "audit_events": len(events),
                "reasons": dict(sorted(reasons.items())),
                "outside_the_flood": {"warmup": dict(warmup.statuses), "idle": dict(idle.statuses)},
            },
            "db_connections": {"bound": bound, "max_observed": max(samples, default=0), "samples": len(samples)},
        }
        checks = {
            "no 5xx for the authenticated client": server_errors == 0 and not during.errors,
            "authenticated p50 within 2x of idle": bool(idle_p50) and flood_p50 <= 2 * idle_p50,
            "every refusal accounted for": accounted == refused == args.flood,
            "connections within the bound": max(samples, default=0) <= bound,
        }
        result["checks"] = checks
        RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
        RESULTS_FILE.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
        for name, ok in checks.items():
            log(f"{'PASS' if ok else 'FAIL'}: {name}")
        return 0 if all(checks.values()) else 1
    except (BenchmarkError, subprocess.CalledProcessError) as exc:
        print(f"[bench] FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        environment.stop(persist_redis=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.refusal_flood", description=__doc__.splitlines()[0])
    parser.add_argument("--flood", type=int, default=2000, help="unauthenticated requests (default 2000)")
    parser.add_argument("--concurrency", type=int, default=20, help="flooding clients (default 20)")
    parser.add_argument("--idle", type=int, default=100, help="invoices measured before the flood (default 100)")
    parser.add_argument(
        "--workers", type=int, default=4 * (os.cpu_count() or 1) + 1, help="sync workers (default gunicorn.conf.py's)"
    )
    parser.add_argument("--pool-max-size", type=int, default=2, help="DB_POOL_MAX_SIZE per worker (default 2)")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
