"""``python -m benchmarks.webhook_ingest``: ``POST /webhooks/stripe/`` against one INSERT, and end to end.

Not a test: a measurement with correctness checks, run by ``make bench-webhooks``
(docs/performance.md, "Webhook ingest (Payments I)"). One run, one gunicorn, two phases:

1. **Ingest** (no worker runs): ``--events`` distinct signed ``checkout.session.completed``
   events (unique ``evt_`` ids, sessions that need not exist), plus 5% exact duplicates (the
   same body and ``Stripe-Signature`` sent again) and 2% bad signatures (signed with a wrong
   secret), shuffled with ``--seed``, POSTed by ``--concurrency`` clients; in the same run the
   one-INSERT baseline (``benchmarks.views``) gets the same bodies at the same concurrency,
   the two alternating in rounds (A B, B A, ...) as in ``benchmarks.invoice_create``. Reported:
   accepted events/s (200s), stored events/s (new inbox rows), p50/p99 per endpoint and kind,
   the ratio to the baseline. Checked: every bad signature answered 400 and its event id is
   in no row; every good delivery answered 200, exactly one per event id with
   ``duplicate: false``; one inbox row and one outbox message per distinct good event.
2. **End to end** (the Stripe peer and a Celery worker run): ``--payments`` invoices are
   created, each payment started through the hosted invoice page (HTTP, on the same
   gunicorn) and paid on the peer's hosted checkout (3-D Secure passed) with webhooks held
   at the peer. Their ``checkout.session.completed`` events (plus 5% duplicates and 2% bad
   signatures) are then delivered to the app at the same concurrency while a real
   ``celery -A paymenter worker`` runs; the clock runs from the first delivery until every
   invoice is ``paid`` with its ``invoice.paid`` audit event and one ``o2s.callback`` outbox
   message (and, reported separately, until O2S - a sink in this process - received each
   callback). Checked: exactly one Payment row, one ``invoice.paid`` audit event and one
   callback message per invoice, no bad-signature event stored.

Both phases also report the CPU time each process group spent (``benchmarks.cpu_meter``:
gunicorn, PostgreSQL, Redis, this runner, the worker, the Stripe stand-in), which on a
machine with a few cores is what sets the throughput.

PostgreSQL and Redis come from ``devtools`` (embedded servers in ``.data/bench-webhooks-*``
unless ``DATABASE_URL`` (superuser) / ``REDIS_URL`` are set; the database is
``paymenter_bench_webhooks``, so ``make bench`` may run on the same server). gunicorn is
started as production starts it (``--server sync``, the default: ``gunicorn.conf.py``, sync
workers, 4 x cores + 1 of them, no keep-alive, ``DB_POOL_MAX_SIZE=2``, its worker recycling
included) or as ``make bench`` does (``--server gthread``). The refusal limit is raised
(``REFUSAL_LIMIT_PER_WINDOW``): the benchmark sends its forgeries from the same address as
its genuine deliveries, which Stripe's own addresses never share with an attacker. Prints a
table, writes ``benchmarks/results/webhooks-latest.json``, exits 1 if any correctness check
failed (a duplicate payment, a bad signature accepted, an unexpected answer); the >= 0.5x
ingest target is reported PASS/FAIL without changing the exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import psycopg
import requests
import stripe

from benchmarks.cpu_meter import CpuMeter, PidSource, add, per_request_ms, process_tree
from benchmarks.invoice_create import (
    BASELINE_PATH,
    BASELINE_TABLE,
    MANAGE,
    BenchmarkError,
    ServerConfig,
    child_environment,
    count_rows,
    create_baseline_table,
    database_facts,
    free_port,
    git_revision,
    log,
    percentiles,
    raise_keyboard_interrupt,
    stop_process_group,
    wait_until_serving,
)
from benchmarks.invoice_create import (
    prepare_environment as prepare_bench_environment,
)
from devtools.provision import BASE_DIR, Environment, data_dir
from devtools.stripe_peer.harness import StripePeer, running_stripe_peer
from paymenter import dbroles
from tests.stripe_events import checkout_session_event

BENCH_DATABASE = "paymenter_bench_webhooks"
WEBHOOK_PATH = "/webhooks/stripe/"
WEBHOOK_SECRET = "whsec_bench_webhooks"  # noqa: S105 - the app's STRIPE_WEBHOOK_SECRETS in this run
WRONG_SECRET = "whsec_not_the_endpoints_secret"  # noqa: S105 - what the forgeries are signed with
STRIPE_KEY = "sk_test_bench_webhooks"
WEBHOOK_TOPIC = "gateways.webhook_event"  # gateways.services.inbox.WEBHOOK_TOPIC (no Django here)
RESULTS_FILE = BASE_DIR / "benchmarks" / "results" / "webhooks-latest.json"
REAPED_POSTGRES = "postgres (closed connections)"
WORKDIR = data_dir() / "bench-webhooks"  # emptied at the start: peer state, gunicorn and worker logs
DUPLICATE_SHARE = 0.05
BAD_SHARE = 0.02

_REQUEST_TIMEOUT_SECONDS = 30
_MAX_SAMPLES = 5


# --- Environment -------------------------------------------------------------------------------


def prepare_environment(environ: dict[str, str]) -> Environment:
    """PostgreSQL and Redis as ``benchmarks.invoice_create`` provisions them, under names of
    this benchmark's own (database ``paymenter_bench_webhooks``, ``.data/bench-webhooks-*``)."""
    return prepare_bench_environment(
        environ,
        database=BENCH_DATABASE,
        tag="bench-webhooks",
        redis_note="Redis: REDIS_URL (the worker purges its Celery queue: use a database of its own)",
    )


def app_environment(environment: Environment, *, port: int, peer: StripePeer, sink_port: int) -> dict[str, str]:
    env = child_environment(environment)
    env.update(
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        STRIPE_SECRET_KEY=STRIPE_KEY,
        STRIPE_API_BASE=peer.api_base,
        STRIPE_WEBHOOK_SECRETS=WEBHOOK_SECRET,
        O2S_CALLBACK_URL=f"http://127.0.0.1:{sink_port}/callbacks",
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",  # receipts: built, not sent
        REFUSAL_LIMIT_PER_WINDOW="1000000000",  # forgeries and genuine deliveries share 127.0.0.1 here
    )
    return env


# --- Fixtures (run in a child process with Django set up) ------------------------------------------


def create_invoices(count: int) -> dict[str, Any]:
    """``count`` issued AUD invoices, one customer each, and their pay links; JSON for the runner.

    One customer per invoice: the fraud rules' velocity limit (``fraud.rules.VelocityConfig``:
    3 payment attempts per customer in 10 minutes) would block a customer's fourth payment."""
    import django  # noqa: PLC0415 - the runner itself never loads Django

    django.setup()
    from billing.services import customer_create  # noqa: PLC0415 - needs the app registry
    from invoices.pay_links import pay_link_url  # noqa: PLC0415
    from invoices.pricing import InvoiceLineInput  # noqa: PLC0415
    from invoices.services import invoice_create  # noqa: PLC0415
    from paymenter.principals import SystemPrincipal  # noqa: PLC0415
    from paymenter.rls import acting_as  # noqa: PLC0415

    principal = SystemPrincipal(label="command:benchmark")
    lines = [InvoiceLineInput(description="VPS small, 1 month", quantity=1, unit_amount_minor=2_000)]
    invoices: list[dict[str, str]] = []
    with acting_as(principal):
        customers = [
            customer_create(
                principal=principal,
                external_id=f"bench-webhooks-{number}",
                billing_country="AU",
                name=f"Webhook Benchmark Customer {number} Pty Ltd",
                email=f"billing{number}@bench-webhooks.example",
            )
            for number in range(count)
        ]
        for customer in customers:
            invoice = invoice_create(principal=principal, customer=customer, lines=lines, currency="AUD", issue=True)
            invoices.append({"id": str(invoice.id), "pay_link": pay_link_url(invoice=invoice)})
    return {"invoices": invoices}


def run_child(env: dict[str, str], *args: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.webhook_ingest", *args]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False, cwd=BASE_DIR)  # noqa: S603 - constant argv
    if completed.returncode != 0:
        raise BenchmarkError(f"{' '.join(args)} failed:\n{completed.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


# --- Deliveries -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One POST: ``kind`` is ``event`` (a first copy), ``duplicate`` (the same bytes again) or
    ``bad`` (signed with a wrong secret; its event id is nowhere else)."""

    kind: str
    event_id: str
    body: str


class Signer:
    """``Stripe-Signature`` per event id, made when the event is first needed (so it is fresh
    within the 300 s tolerance) and then reused: a duplicate is the exact same header."""

    def __init__(self) -> None:
        self._headers: dict[str, str] = {}

    def header(self, delivery: Delivery) -> str:
        found = self._headers.get(delivery.event_id)
        if found is None:
            secret = WRONG_SECRET if delivery.kind == "bad" else WEBHOOK_SECRET
            found = stripe.WebhookSignature.generate_signature_header(
                payload=delivery.body, secret=secret, timestamp=int(time.time())
            )
            self._headers[delivery.event_id] = found
        return found


def mixed(events: list[tuple[str, str]], forgeries: list[tuple[str, str]], rng: random.Random) -> list[Delivery]:
    """Every event once, 5% of them twice, the forgeries (2%), shuffled by ``rng``."""
    deliveries = [Delivery("event", event_id, body) for event_id, body in events]
    duplicated = rng.sample(events, round(len(events) * DUPLICATE_SHARE))
    deliveries += [Delivery("duplicate", event_id, body) for event_id, body in duplicated]
    deliveries += [Delivery("bad", event_id, body) for event_id, body in forgeries]
    rng.shuffle(deliveries)
    return deliveries


def synthetic_events(prefix: str, count: int) -> list[tuple[str, str]]:
    """``checkout.session.completed`` events for sessions that need not exist (ingest only)."""
    result = []
    for number in range(count):
        event_id = f"evt_{prefix}_{number:06d}"
        event = checkout_session_event(
            session_id=f"cs_test_{prefix}_{number:06d}",
            payment_intent=f"pi_{prefix}_{number:06d}",
            metadata={"invoice_id": str(uuid.UUID(int=number)), "attempt_id": str(uuid.UUID(int=number + 1))},
            event_id=event_id,
        )
        result.append((event_id, json.dumps(event)))
    return result


def ingest_plan(prefix: str, count: int, rng: random.Random) -> list[Delivery]:
    return mixed(synthetic_events(prefix, count), synthetic_events(f"{prefix}_bad", round(count * BAD_SHARE)), rng)


# --- Load ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    delivery: Delivery
    status: int  # 0: no answer
    latency: float
    body: dict[str, Any]
    error: str = ""


@dataclass
class Batch:
    endpoint: str
    outcomes: list[Outcome] = field(default_factory=list)
    wall_seconds: float = 0.0


def run_batch(
    endpoint: str, *, port: int, deliveries: list[Delivery], concurrency: int, signer: Signer | None
) -> Batch:
    """POST every delivery from ``concurrency`` threads, one keep-alive connection each.
    ``endpoint`` "webhook" sends it signed to ``/webhooks/stripe/``; "baseline" sends the same
    body to the one-INSERT view. Headers are built before the clock starts."""
    path = WEBHOOK_PATH if endpoint == "webhook" else BASELINE_PATH
    prepared: list[tuple[Delivery, bytes, dict[str, str]]] = []
    for delivery in deliveries:
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "Stripe/1.0 (benchmark)"}
        if signer is not None:
            headers["Stripe-Signature"] = signer.header(delivery)
        prepared.append((delivery, delivery.body.encode(), headers))
    batch = Batch(endpoint=endpoint)
    numbers = itertools.count()  # next() on a count is atomic under the GIL
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=_REQUEST_TIMEOUT_SECONDS)
        try:
            while (number := next(numbers)) < len(prepared):
                delivery, body, headers = prepared[number]
                started = time.perf_counter()
                try:
                    conn.request("POST", path, body=body, headers=headers)
                    response = conn.getresponse()
                    content = response.read()
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()  # reconnects on the next request
                    outcome = Outcome(delivery, 0, 0.0, {}, f"{type(exc).__name__}: {exc}")
                else:
                    elapsed = time.perf_counter() - started
                    try:
                        parsed = json.loads(content)
                    except ValueError:
                        parsed = {}
                    document = parsed if isinstance(parsed, dict) else {}
                    outcome = Outcome(
                        delivery, response.status, elapsed, document, "" if document else repr(content[:200])
                    )
                with lock:
                    batch.outcomes.append(outcome)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, name=f"bench-{endpoint}-{i}", daemon=True) for i in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    batch.wall_seconds = time.perf_counter() - started
    return batch


# --- Statistics and response checks ---------------------------------------------------------------------


def webhook_failure(outcome: Outcome) -> str:
    """Why this answer is wrong for its delivery ("" when it is right)."""
    kind, status, body = outcome.delivery.kind, outcome.status, outcome.body
    if kind == "bad":
        code = (body.get("error") or {}).get("code") if isinstance(body.get("error"), dict) else None
        if status != 400 or code != "webhook_signature_invalid":
            return f"bad signature answered HTTP {status} {code or outcome.error}: ACCEPTED OR MISANSWERED"
        return ""
    if status != 200 or body.get("received") is not True or not isinstance(body.get("duplicate"), bool):
        return f"{kind} answered HTTP {status}: {body or outcome.error}"
    return ""


def summarize_webhook(batches: list[Batch]) -> dict[str, Any]:
    outcomes = [outcome for batch in batches for outcome in batch.outcomes]
    wall = sum(batch.wall_seconds for batch in batches)
    accepted = [o for o in outcomes if o.status == 200]
    stored = [o for o in accepted if o.body.get("duplicate") is False]
    failures = [failure for o in outcomes if (failure := webhook_failure(o))]
    by_kind: dict[str, Any] = {}
    for kind in ("event", "duplicate", "bad"):
        mine = [o for o in outcomes if o.delivery.kind == kind]
        by_kind[kind] = {
            "requests": len(mine),
            "statuses": dict(sorted(Counter(o.status for o in mine).items())),
            "answered_duplicate_true": sum(1 for o in mine if o.body.get("duplicate") is True),
            **percentiles([o.latency for o in mine if o.status]),
        }
    return {
        "requests": len(outcomes),
        "accepted": len(accepted),
        "stored": len(stored),
        "refused": sum(1 for o in outcomes if o.status == 400),
        "failed": len(failures),
        "failure_samples": sorted(set(failures))[:_MAX_SAMPLES],
        "wall_seconds": round(wall, 3),
        "throughput_rps": round(len(outcomes) / wall, 1) if wall else 0.0,
        "accepted_per_s": round(len(accepted) / wall, 1) if wall else 0.0,
        "stored_per_s": round(len(stored) / wall, 1) if wall else 0.0,
        "per_round_accepted_per_s": [
            round(sum(1 for o in b.outcomes if o.status == 200) / b.wall_seconds, 1) if b.wall_seconds else 0.0
            for b in batches
        ],
        **percentiles([o.latency for o in outcomes if o.status]),
        "by_kind": by_kind,
    }


def summarize_baseline(batches: list[Batch]) -> dict[str, Any]:
    outcomes = [outcome for batch in batches for outcome in batch.outcomes]
    wall = sum(batch.wall_seconds for batch in batches)
    ok = [o for o in outcomes if o.status == 201 and "id" in o.body]
    ids = {o.body["id"] for o in ok}
    failures = [f"HTTP {o.status}: {o.body or o.error}" for o in outcomes if o.status != 201 or "id" not in o.body]
    if len(ids) != len(ok):
        failures.append(f"{len(ok)} baseline 201s created {len(ids)} distinct rows")
    return {
        "requests": len(outcomes),
        "ok": len(ok),
        "failed": len(failures),
        "failure_samples": sorted(set(failures))[:_MAX_SAMPLES],
        "wall_seconds": round(wall, 3),
        "throughput_rps": round(len(ok) / wall, 1) if wall else 0.0,
        "per_round_throughput_rps": [
            round(sum(1 for o in b.outcomes if o.status == 201) / b.wall_seconds, 1) if b.wall_seconds else 0.0
            for b in batches
        ],
        **percentiles([o.latency for o in ok]),
    }


def once_per_event(outcomes: list[Outcome]) -> list[str]:
    """Each good event id answered ``duplicate: false`` exactly once, whatever the copies."""
    firsts: Counter[str] = Counter()
    copies: Counter[str] = Counter()
    for outcome in outcomes:
        if outcome.delivery.kind == "bad" or outcome.status != 200:
            continue
        copies[outcome.delivery.event_id] += 1
        if outcome.body.get("duplicate") is False:
            firsts[outcome.delivery.event_id] += 1
    wrong = [event_id for event_id in copies if firsts[event_id] != 1]
    return [f"{len(wrong)} event ids not answered duplicate:false exactly once, e.g. {wrong[:3]}"] if wrong else []


# --- Database checks --------------------------------------------------------------------------------------


@contextlib.contextmanager
def system_scope(owner: str | psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """A transaction of the owner (a new connection for a URL, else the one given) with the
    ``system`` RLS scope; committed (read-only anyway) on exit."""
    if isinstance(owner, str):
        with psycopg.connect(owner) as conn, system_scope(conn) as scoped:
            yield scoped
        return
    owner.execute("SELECT set_config('paymenter.scope', 'system', true)")
    try:
        yield owner
    finally:
        owner.commit()


def _scalar(conn: psycopg.Connection[Any], query: str, params: list[Any]) -> int:
    row = conn.execute(query, params).fetchone()
    return int(row[0]) if row else 0


def inbox_counts(owner_url: str, event_ids: list[str]) -> dict[str, int]:
    """Inbox rows and webhook outbox messages for these event ids."""
    keys = [f"webhook:stripe:{event_id}" for event_id in event_ids]
    with system_scope(owner_url) as conn:
        return {
            "inbox_rows": _scalar(
                conn, "SELECT count(*) FROM gateways_webhookevent WHERE event_id = ANY(%s)", [event_ids]
            ),
            "distinct_inbox_event_ids": _scalar(
                conn, "SELECT count(DISTINCT event_id) FROM gateways_webhookevent WHERE event_id = ANY(%s)", [event_ids]
            ),
            "outbox_messages": _scalar(
                conn,
                "SELECT count(*) FROM paymenter_outboxmessage WHERE topic = %s AND ordering_key = ANY(%s)",
                [WEBHOOK_TOPIC, keys],
            ),
        }


def settlement_counts(owner_url: str | psycopg.Connection[Any], invoice_ids: list[str]) -> dict[str, int]:
    """What the end-to-end phase waits for, and its duplicate checks, for these invoices."""
    with system_scope(owner_url) as conn:
        row = conn.execute(
            """
            SELECT
              (SELECT count(*) FROM invoices_invoice WHERE id::text = ANY(%(ids)s) AND status = 'paid'),
              (SELECT count(*) FROM audit_auditevent WHERE action = 'invoice.paid' AND object_id = ANY(%(ids)s)),
              (SELECT count(DISTINCT object_id) FROM audit_auditevent
                 WHERE action = 'invoice.paid' AND object_id = ANY(%(ids)s)),
              (SELECT count(*) FROM paymenter_outboxmessage WHERE topic = 'o2s.callback'
                 AND payload->>'type' = 'invoice.paid' AND payload->'data'->>'invoice_id' = ANY(%(ids)s)),
              (SELECT count(DISTINCT payload->'data'->>'invoice_id') FROM paymenter_outboxmessage
                 WHERE topic = 'o2s.callback' AND payload->>'type' = 'invoice.paid'
                 AND payload->'data'->>'invoice_id' = ANY(%(ids)s)),
              (SELECT count(*) FROM gateways_payment WHERE invoice_id::text = ANY(%(ids)s)),
              (SELECT count(DISTINCT invoice_id) FROM gateways_payment WHERE invoice_id::text = ANY(%(ids)s)),
              (SELECT count(*) FROM gateways_payment WHERE invoice_id::text = ANY(%(ids)s) AND status = 'applied'),
              (SELECT count(*) FROM paymenter_outboxmessage WHERE topic = 'portal.receipt'
                 AND payload->>'type' = 'invoice.paid' AND payload->'data'->>'invoice_id' = ANY(%(ids)s))
            """,
            {"ids": invoice_ids},
        ).fetchone()
    names = [
        "invoices_paid",
        "audit_invoice_paid",
        "audit_invoice_paid_invoices",
        "o2s_callback_messages",
        "o2s_callback_invoices",
        "payments",
        "payment_invoices",
        "payments_applied",
        "receipt_messages",
    ]
    return {name: int(value) for name, value in zip(names, row or [0] * len(names), strict=True)}


def outbox_timeline(owner_url: str, *, event_ids: list[str], invoice_ids: list[str], since: float) -> dict[str, Any]:
    """Per topic, for this phase's messages: how many, attempts, and when they were created and
    delivered (seconds after ``since``, a ``time.time()``), with the queueing delay p50/max."""
    keys = [f"webhook:stripe:{event_id}" for event_id in event_ids]
    with system_scope(owner_url) as conn:
        rows = conn.execute(
            """
            SELECT topic, count(*), sum(attempts), count(*) FILTER (WHERE status = 'delivered'),
                   extract(epoch FROM min(created_at)) - %(since)s, extract(epoch FROM max(created_at)) - %(since)s,
                   extract(epoch FROM min(delivered_at)) - %(since)s, extract(epoch FROM max(delivered_at)) - %(since)s,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM delivered_at - created_at)),
                   max(extract(epoch FROM delivered_at - created_at))
            FROM paymenter_outboxmessage
            WHERE ordering_key = ANY(%(keys)s) OR payload->'data'->>'invoice_id' = ANY(%(ids)s)
            GROUP BY topic ORDER BY topic
            """,
            {"since": since, "keys": keys, "ids": invoice_ids},
        ).fetchall()
    names = ["messages", "attempts", "delivered", "first_created_s", "last_created_s"]
    names += ["first_delivered_s", "last_delivered_s", "delay_p50_s", "delay_max_s"]
    return {
        str(row[0]): {
            name: (round(float(value), 3) if value is not None else None) if i > 2 else int(value or 0)
            for i, (name, value) in enumerate(zip(names, row[1:], strict=True))
        }
        for row in rows
    }


def sessions_opened(owner_url: str) -> int:
    """Connections ever opened to the benchmark's database (``pg_stat_database.sessions``; it
    may lag by up to a second: read it after things have settled)."""
    with psycopg.connect(owner_url, autocommit=True) as conn:
        row = conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", [BENCH_DATABASE]).fetchone()
    return int(row[0]) if row else 0


def paid_count(owner_url: str | psycopg.Connection[Any], invoice_ids: list[str]) -> int:
    with system_scope(owner_url) as conn:
        return _scalar(
            conn, "SELECT count(*) FROM invoices_invoice WHERE id = ANY(%s::uuid[]) AND status = 'paid'", [invoice_ids]
        )


def webhook_statuses(owner_url: str, event_ids: list[str]) -> dict[str, int]:
    with system_scope(owner_url) as conn:
        rows = conn.execute(
            "SELECT status, count(*) FROM gateways_webhookevent WHERE event_id = ANY(%s) GROUP BY status", [event_ids]
        ).fetchall()
    return {str(status): int(count) for status, count in rows}


# --- Ingest phase ---------------------------------------------------------------------------------------


def run_ingest(
    args: argparse.Namespace, *, port: int, owner_url: str, meter: CpuMeter
) -> tuple[dict[str, Any], list[str]]:
    rng = random.Random(args.seed)  # noqa: S311 - a reproducible shuffle, not a secret
    signer = Signer()
    failures: list[str] = []
    warm = ingest_plan(f"bw{args.seed}", args.warmup, rng)
    log(f"ingest warm-up: {len(warm)} deliveries to each endpoint")
    warm_batches = {
        "webhook": run_batch("webhook", port=port, deliveries=warm, concurrency=args.concurrency, signer=signer),
        "baseline": run_batch("baseline", port=port, deliveries=warm, concurrency=args.concurrency, signer=None),
    }
    plan = ingest_plan(f"bi{args.seed}", args.events, rng)
    per_round = -(-len(plan) // args.rounds)
    rounds = [plan[i : i + per_round] for i in range(0, len(plan), per_round)]
    batches: dict[str, list[Batch]] = {"webhook": [], "baseline": []}
    cpu: dict[str, dict[str, float]] = {"webhook": {}, "baseline": {}}
    for number, deliveries in enumerate(rounds):
        order = ["baseline", "webhook"] if number % 2 == 0 else ["webhook", "baseline"]
        for endpoint in order:
            before = meter.sample()
            batch = run_batch(
                endpoint,
                port=port,
                deliveries=deliveries,
                concurrency=args.concurrency,
                signer=signer if endpoint == "webhook" else None,
            )
            add(cpu[endpoint], CpuMeter.seconds(before, meter.sample()))
            batches[endpoint].append(batch)
            ok = sum(1 for o in batch.outcomes if o.status in (200, 201))
            log(
                f"round {number + 1}/{len(rounds)} {endpoint}: {len(batch.outcomes)} requests, {ok} accepted,"
                f" {ok / batch.wall_seconds:.0f}/s"
            )
    webhook = summarize_webhook(batches["webhook"])
    baseline = summarize_baseline(batches["baseline"])
    webhook["cpu_ms_per_request"] = per_request_ms(cpu["webhook"], webhook["requests"])
    baseline["cpu_ms_per_request"] = per_request_ms(cpu["baseline"], baseline["requests"])
    failures += webhook["failure_samples"] if webhook["failed"] else []
    failures += baseline["failure_samples"] if baseline["failed"] else []
    warm_webhook = summarize_webhook([warm_batches["webhook"]])
    failures += warm_webhook["failure_samples"] if warm_webhook["failed"] else []
    all_outcomes = [o for b in [warm_batches["webhook"], *batches["webhook"]] for o in b.outcomes]
    failures += once_per_event(all_outcomes)

    good_ids = sorted({d.event_id for d in [*warm, *plan] if d.kind != "bad"})
    bad_ids = sorted({d.event_id for d in [*warm, *plan] if d.kind == "bad"})
    good = inbox_counts(owner_url, good_ids)
    bad = inbox_counts(owner_url, bad_ids)
    baseline_rows = count_rows(owner_url, BASELINE_TABLE)
    baseline_expected = sum(
        1 for b in [warm_batches["baseline"], *batches["baseline"]] for o in b.outcomes if o.status == 201
    )
    database = {
        "distinct_good_events_sent": len(good_ids),
        "bad_signature_events_sent": len(bad_ids),
        "good": good,
        "bad_signature": bad,
        "baseline_rows": baseline_rows,
        "baseline_201s": baseline_expected,
    }
    checks = {
        "every bad signature answered 400 webhook_signature_invalid": all(
            o.status == 400 for o in all_outcomes if o.delivery.kind == "bad"
        ),
        "zero bad-signature events stored (inbox rows, outbox messages)": bad["inbox_rows"] == 0
        and bad["outbox_messages"] == 0,
        "every good delivery answered 200; duplicate:false exactly once per event id": not once_per_event(all_outcomes)
        and all(o.status == 200 for o in all_outcomes if o.delivery.kind != "bad"),
        "one inbox row and one outbox message per distinct good event": good["inbox_rows"]
        == good["outbox_messages"]
        == len(good_ids),
        "one baseline row per baseline 201": baseline_rows == baseline_expected,
    }
    failures += [f"check failed: {name}" for name, ok in checks.items() if not ok]
    ratio = ingest_ratios(webhook, baseline)
    result = {
        "events": args.events,
        "deliveries_per_endpoint": len(plan),
        "warmup_deliveries_per_endpoint": len(warm),
        "rounds": len(rounds),
        "concurrency": args.concurrency,
        "seed": args.seed,
        "mix": {kind: sum(1 for d in plan if d.kind == kind) for kind in ("event", "duplicate", "bad")},
        "body_bytes_mean": round(statistics.fmean(len(d.body) for d in plan)),
        "webhook": webhook,
        "baseline": baseline,
        "ratios_webhook_over_baseline": ratio,
        "target": {
            "accepted_throughput_ratio_at_least": 0.5,
            "result": "PASS" if ratio.get("accepted_throughput", 0) >= 0.5 else "FAIL",
        },
        "database": database,
        "checks": checks,
    }
    return result, failures


def ingest_ratios(webhook: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, mine, theirs in (
        ("accepted_throughput", "accepted_per_s", "throughput_rps"),
        ("request_throughput", "throughput_rps", "throughput_rps"),
        ("stored_throughput", "stored_per_s", "throughput_rps"),
        ("p50", "p50_ms", "p50_ms"),
        ("p99", "p99_ms", "p99_ms"),
        ("mean", "mean_ms", "mean_ms"),
    ):
        if webhook.get(mine) and baseline.get(theirs):
            result[name] = round(webhook[mine] / baseline[theirs], 3)
    result["per_round_accepted_throughput"] = [
        round(mine / theirs, 3) if theirs else None
        for mine, theirs in zip(webhook["per_round_accepted_per_s"], baseline["per_round_throughput_rps"], strict=True)
    ]
    return result


# --- End-to-end phase -------------------------------------------------------------------------------------


class CallbackSink:
    """O2S for this run: answers 204 to every callback and remembers what it received."""

    def __init__(self) -> None:
        self.received: list[tuple[float, str, str, str]] = []  # (monotonic, event id header, type, invoice id)
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    document = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    document = {}
                data = document.get("data") if isinstance(document, dict) else None
                with sink._lock:
                    sink.received.append(
                        (
                            time.monotonic(),
                            str(self.headers.get("Paymenter-Event-Id", "")),
                            str(document.get("type", "")) if isinstance(document, dict) else "",
                            str(data.get("invoice_id", "")) if isinstance(data, dict) else "",
                        )
                    )
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, name="callback-sink", daemon=True)
        self._thread.start()

    def paid(self, invoice_ids: set[str]) -> list[tuple[float, str, str, str]]:
        with self._lock:
            return [item for item in self.received if item[2] == "invoice.paid" and item[3] in invoice_ids]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass(frozen=True)
class PaidInvoice:
    invoice_id: str
    session_id: str


def start_and_pay(port: int, peer: StripePeer, pay_link: str, invoice_id: str) -> PaidInvoice:
    """The customer's path: the hosted invoice page, Pay by card (303 to the peer's checkout),
    card and 3-D Secure on the peer's page. The return page is not visited."""
    with requests.Session() as browser:
        page = browser.get(pay_link, timeout=30)
        page.raise_for_status()
        token = page.cookies.get("csrftoken") or browser.cookies.get("csrftoken")
        if not token:
            raise BenchmarkError(f"no CSRF cookie on the hosted invoice page (HTTP {page.status_code})")
        started = browser.post(
            pay_link + "start/stripe/",
            data={"csrfmiddlewaretoken": token},
            headers={"Referer": pay_link},
            allow_redirects=False,
            timeout=60,
        )
    location = started.headers.get("Location", "")
    if started.status_code != 303 or f"{peer.api_base}/checkout/" not in location:
        raise BenchmarkError(f"starting the payment answered HTTP {started.status_code}: {started.text[:300]}")
    peer.pay(location)
    return PaidInvoice(invoice_id=invoice_id, session_id=location.rsplit("/", 1)[-1])


def completed_events(peer: StripePeer, sessions: set[str], *, settle_seconds: float) -> list[dict[str, Any]]:
    """The peer's ``checkout.session.completed`` events of these sessions, once localstripe's own
    (delayed) events have stopped arriving, so they do not load the peer during the measurement."""
    deadline = time.monotonic() + 60
    previous, stable_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        events = peer.events()
        if len(events) != previous:
            previous, stable_since = len(events), time.monotonic()
        elif time.monotonic() - stable_since >= settle_seconds:
            break
        time.sleep(0.25)
    found = [
        event
        for event in peer.events()
        if event["type"] == "checkout.session.completed" and event["data"]["object"]["id"] in sessions
    ]
    if len(found) != len(sessions):
        raise BenchmarkError(f"{len(found)} checkout.session.completed events at the peer for {len(sessions)} sessions")
    return found


def peer_fetch_ceiling(peer: StripePeer, sessions: list[str], concurrency: int) -> dict[str, Any]:
    """The Stripe stand-in's own limit: the fetch-back the worker does per event (the session,
    then its PaymentIntent with the latest charge expanded), for every session, from
    ``concurrency`` threads, with nothing else running. The end-to-end rate cannot exceed it."""
    local = threading.local()
    headers = {"Authorization": f"Bearer {STRIPE_KEY}", "Stripe-Version": stripe.api_version}

    def fetch(session_id: str) -> None:
        http = getattr(local, "session", None)
        if http is None:
            http = local.session = requests.Session()
        session = http.get(f"{peer.api_base}/v1/checkout/sessions/{session_id}", headers=headers, timeout=30)
        session.raise_for_status()
        intent = http.get(
            f"{peer.api_base}/v1/payment_intents/{session.json()['payment_intent']}",
            params={"expand[]": "latest_charge"},
            headers=headers,
            timeout=30,
        )
        intent.raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(fetch, sessions))
    wall = time.perf_counter() - started
    return {
        "fetch_backs": len(sessions),
        "concurrency": concurrency,
        "wall_seconds": round(wall, 3),
        "per_s": round(len(sessions) / wall, 1),
    }


def celery_command(concurrency: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "paymenter",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "WARNING",
        "--purge",  # the ingest phase's nudges (sessions that do not exist) are not this phase's work
        "--without-mingle",
        "--without-gossip",
        "-n",
        "bench-webhooks@%h",
    ]


def broker_url(env: dict[str, str]) -> str:
    redis_url = env["REDIS_URL"]
    parts = urlsplit(redis_url)
    return f"redis+socket://{parts.path}" if parts.scheme == "unix" else redis_url


@contextlib.contextmanager
def running_worker(env: dict[str, str], concurrency: int, logfile: Any) -> Iterator[subprocess.Popen[bytes]]:
    """``celery -A paymenter worker`` in its own process group; returns once it answers a ping."""
    from celery import Celery  # noqa: PLC0415 - only this phase needs a broker client

    process = subprocess.Popen(  # noqa: S603 - constant argv
        celery_command(concurrency), env=env, cwd=BASE_DIR, start_new_session=True, stdout=logfile, stderr=logfile
    )
    client = Celery("bench-webhooks-probe", broker=broker_url(env))
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise BenchmarkError(f"the Celery worker exited with status {process.returncode} while starting")
            if time.monotonic() > deadline:
                raise BenchmarkError("the Celery worker did not answer a ping within 90 s")
            with contextlib.suppress(Exception):  # not connected yet
                if client.control.ping(timeout=1.0):
                    break
            time.sleep(0.2)
        yield process
    finally:
        client.close()
        stop_process_group(process)


def e2e_plan(events: list[dict[str, Any]], rng: random.Random) -> list[Delivery]:
    genuine = [(str(event["id"]), json.dumps(event)) for event in events]
    forgeries = []
    for number, event in enumerate(rng.sample(events, max(1, round(len(events) * BAD_SHARE)))):
        forged = dict(event, id=f"evt_forged_{number:06d}")
        forgeries.append((str(forged["id"]), json.dumps(forged)))
    return mixed(genuine, forgeries, rng)


def run_e2e(  # noqa: PLR0915 - one straight script: set up, deliver, wait, check
    args: argparse.Namespace,
    *,
    port: int,
    env: dict[str, str],
    peer: StripePeer,
    sink: CallbackSink,
    owner_url: str,
    groups: dict[str, PidSource],
    reaped: dict[str, int],
) -> tuple[dict[str, Any], list[str]]:
    failures: list[str] = []
    peer.configure(delivery="hold")  # the app receives the events from this runner, measured
    log(f"end to end: creating {args.payments} invoices")
    created = run_child(env, "--create-invoices", str(args.payments))["invoices"]
    log(f"end to end: starting and paying {len(created)} payments (hosted page -> peer checkout, 3-D Secure)")
    setup_started = time.perf_counter()
    with ThreadPoolExecutor(args.setup_concurrency) as pool:
        paid = list(pool.map(lambda item: start_and_pay(port, peer, item["pay_link"], item["id"]), created))
    sessions = {item.session_id for item in paid}
    events = completed_events(peer, sessions, settle_seconds=2.0)
    setup_seconds = time.perf_counter() - setup_started
    invoice_ids = [item.invoice_id for item in paid]
    before = settlement_counts(owner_url, invoice_ids)
    if before["invoices_paid"] or before["payments"]:
        raise BenchmarkError(f"invoices settled before any webhook was delivered: {before}")
    rng = random.Random(args.seed + 1)  # noqa: S311 - a reproducible shuffle
    plan = e2e_plan(events, rng)
    signer = Signer()
    worker_log = peer.workdir / "celery-worker.log"
    with (
        contextlib.ExitStack() as stack,
        worker_log.open("wb") as logfile,
        running_worker(env, args.worker_concurrency, logfile) as worker,
    ):
        log(f"end to end: worker ready ({args.worker_concurrency} prefork processes); delivering {len(plan)} webhooks")
        meter = CpuMeter(
            {
                **groups,
                "celery worker": lambda: process_tree(worker.pid),
                "stripe peer + localstripe": lambda: set(peer.pids),
            },
            reaped,
        )
        poller = stack.enter_context(psycopg.connect(owner_url))  # one connection: polling costs the server too
        sessions_before = sessions_opened(owner_url)
        cpu_before = meter.sample(everyone=True)
        box: dict[str, Batch] = {}
        started_wall = time.time()
        started = time.monotonic()
        sender = threading.Thread(
            target=lambda: box.setdefault(
                "batch",
                run_batch("webhook", port=port, deliveries=plan, concurrency=args.concurrency, signer=signer),
            ),
            daemon=True,
        )
        sender.start()
        settled_at = None
        counts = before
        deadline = started + args.e2e_timeout
        cpu_seconds: dict[str, float] = {}
        cpu_others: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            # a cheap count first: the full one scans JSON payloads, and polling costs the server too
            if paid_count(poller, invoice_ids) == len(invoice_ids):
                counts = settlement_counts(poller, invoice_ids)
                if counts["audit_invoice_paid_invoices"] == counts["o2s_callback_invoices"] == len(invoice_ids):
                    settled_at = time.monotonic()
                    cpu_after = meter.sample(everyone=True)
                    cpu_seconds = CpuMeter.seconds(cpu_before, cpu_after)
                    cpu_others = CpuMeter.others(cpu_before, cpu_after)
                    break
            time.sleep(0.1)
        sender.join(timeout=max(1.0, deadline - time.monotonic()))
        wanted = set(invoice_ids)
        callbacks_at = None
        while time.monotonic() < deadline + 30:
            if {item[3] for item in sink.paid(wanted)} >= wanted:
                callbacks_at = max(item[0] for item in sink.paid(wanted))
                break
            time.sleep(0.05)
        time.sleep(1.0)  # anything still in flight (a duplicate effect would show up now)
        connections = sessions_opened(owner_url) - sessions_before - 1  # less the one counting
    batch = box.get("batch")
    if batch is None:
        raise BenchmarkError("the end-to-end deliveries did not finish")
    ceiling = peer_fetch_ceiling(peer, [item.session_id for item in paid], args.worker_concurrency)
    delivery = summarize_webhook([batch])
    counts = settlement_counts(owner_url, invoice_ids)
    good_ids = sorted({d.event_id for d in plan if d.kind != "bad"})
    bad_ids = sorted({d.event_id for d in plan if d.kind == "bad"})
    received = sink.paid(wanted)
    m = len(invoice_ids)
    checks = {
        "every invoice paid": counts["invoices_paid"] == m,
        "zero duplicate payments: one Payment row per invoice (applied)": counts["payments"]
        == counts["payment_invoices"]
        == counts["payments_applied"]
        == m,
        "one invoice.paid audit event per invoice": counts["audit_invoice_paid"]
        == counts["audit_invoice_paid_invoices"]
        == m,
        "one o2s.callback invoice.paid message per invoice": counts["o2s_callback_messages"]
        == counts["o2s_callback_invoices"]
        == m,
        "one receipt message per invoice": counts["receipt_messages"] == m,
        "zero bad-signature events stored": inbox_counts(owner_url, bad_ids)["inbox_rows"] == 0,
        "every delivery answered as expected": delivery["failed"] == 0 and not once_per_event(batch.outcomes),
        "O2S received each invoice.paid callback once (one event id per invoice)": len({i[3] for i in received}) == m
        and len({i[1] for i in received}) == m,
    }
    failures += delivery["failure_samples"] if delivery["failed"] else []
    failures += [f"check failed: {name}" for name, ok in checks.items() if not ok]
    if settled_at is None:
        failures.append(f"not settled within {args.e2e_timeout:.0f} s: {counts}")
    e2e_seconds = (settled_at - started) if settled_at else None
    callback_seconds = (callbacks_at - started) if callbacks_at else None
    result = {
        "invoices": m,
        "deliveries": len(plan),
        "mix": {kind: sum(1 for d in plan if d.kind == kind) for kind in ("event", "duplicate", "bad")},
        "concurrency": args.concurrency,
        "worker": {"command": "celery " + " ".join(celery_command(args.worker_concurrency)[3:])},
        "setup_seconds": round(setup_seconds, 1),
        "delivery": {
            **{k: delivery[k] for k in ("requests", "accepted", "stored", "refused", "failed", "wall_seconds")},
            "accepted_per_s": delivery["accepted_per_s"],
            **percentiles([o.latency for o in batch.outcomes if o.status]),
        },
        "settled_seconds": round(e2e_seconds, 3) if e2e_seconds else None,
        "stripe_peer_fetch_back_ceiling": ceiling,
        "postgres_connections_opened": connections,
        "postgres_connections_opened_per_invoice": round(connections / m, 1),
        "cpu_seconds_until_settled": {name: round(value, 2) for name, value in cpu_seconds.items()},
        "cpu_ms_per_invoice": per_request_ms(cpu_seconds, m),
        "cpu_top_other_processes": cpu_others,
        "settled_invoices_per_s": round(m / e2e_seconds, 1) if e2e_seconds else None,
        "callbacks_delivered_seconds": round(callback_seconds, 3) if callback_seconds else None,
        "callbacks_delivered_per_s": round(m / callback_seconds, 1) if callback_seconds else None,
        "database": {**counts, "webhook_event_statuses": webhook_statuses(owner_url, good_ids)},
        "outbox_timeline": outbox_timeline(owner_url, event_ids=good_ids, invoice_ids=invoice_ids, since=started_wall),
        "callbacks_received": {"invoice_paid": len(received), "distinct_invoices": len({i[3] for i in received})},
        "checks": checks,
    }
    return result, failures


# --- Report --------------------------------------------------------------------------------------------------


def format_table(ingest: dict[str, Any] | None, e2e: dict[str, Any] | None) -> str:
    lines: list[str] = []
    if ingest:
        header = (
            f"{'ingest endpoint':<44} {'requests':>8} {'accepted':>8} {'p50 ms':>8} {'p99 ms':>8} {'accepted/s':>11}"
        )
        lines += [header, "-" * len(header)]
        base, hook, ratio = ingest["baseline"], ingest["webhook"], ingest["ratios_webhook_over_baseline"]
        lines.append(
            f"{'baseline  POST ' + BASELINE_PATH + ' (1 INSERT)':<44} {base['requests']:>8} {base['ok']:>8}"
            f" {base.get('p50_ms', 0):>8.2f} {base.get('p99_ms', 0):>8.2f} {base['throughput_rps']:>11.1f}"
        )
        lines.append(
            f"{'webhook   POST ' + WEBHOOK_PATH:<44} {hook['requests']:>8} {hook['accepted']:>8}"
            f" {hook.get('p50_ms', 0):>8.2f} {hook.get('p99_ms', 0):>8.2f} {hook['accepted_per_s']:>11.1f}"
        )
        for kind in ("event", "duplicate", "bad"):
            mine = hook["by_kind"][kind]
            lines.append(
                f"{'  of which ' + kind:<44} {mine['requests']:>8} {mine['statuses'].get(200, 0):>8}"
                f" {mine.get('p50_ms', 0):>8.2f} {mine.get('p99_ms', 0):>8.2f} {'':>11}"
            )
        lines.append(
            f"{'ratio webhook / baseline':<44} {'':>8} {'':>8} {ratio.get('p50', 0):>7.2f}x"
            f" {ratio.get('p99', 0):>7.2f}x {ratio.get('accepted_throughput', 0):>10.3f}x"
        )
        lines.append(
            f"target accepted/s >= 0.5x baseline: {ingest['target']['result']}"
            f" (per round {ratio['per_round_accepted_throughput']}; stored/s {hook['stored_per_s']},"
            f" all requests/s {hook['throughput_rps']})"
        )
        lines.append("CPU ms per request (all processes of the run; machine = every core, other work included):")
        for name, summary in (("baseline", base), ("webhook", hook)):
            lines.append(f"  {name:<9} {format_cpu(summary.get('cpu_ms_per_request', {}))}")
    if e2e:
        delivery, ceiling = e2e["delivery"], e2e["stripe_peer_fetch_back_ceiling"]
        lines += [
            "",
            f"end to end: {e2e['invoices']} paid sessions, {e2e['deliveries']} deliveries {e2e['mix']}, worker"
            f" {e2e['worker']['command'].split('--concurrency ')[1].split()[0]} processes",
            f"  delivery (ingest while the worker runs): {delivery['wall_seconds']:.2f} s,"
            f" {delivery['accepted_per_s']:.1f} accepted/s, p50 {delivery.get('p50_ms', 0):.1f} ms,"
            f" p99 {delivery.get('p99_ms', 0):.1f} ms",
            f"  first delivery -> every invoice paid + audit + o2s.callback queued: {e2e['settled_seconds']} s"
            f" = {e2e['settled_invoices_per_s']} events/s",
            f"  first delivery -> every invoice.paid callback received by O2S: {e2e['callbacks_delivered_seconds']} s"
            f" = {e2e['callbacks_delivered_per_s']} events/s",
            f"  CPU ms per invoice until settled: {format_cpu(e2e.get('cpu_ms_per_invoice', {}))}",
            f"  PostgreSQL connections opened during the phase: {e2e['postgres_connections_opened']}"
            f" ({e2e['postgres_connections_opened_per_invoice']} per invoice)",
            f"  the Stripe stand-in alone (session + PaymentIntent fetch-back, {ceiling['concurrency']} threads):"
            f" {ceiling['per_s']} fetch-backs/s",
            "  busiest processes outside the run meanwhile: "
            + (
                ", ".join(f"{o['command'][:60]} {o['cpu_seconds']} s" for o in e2e["cpu_top_other_processes"][:3])
                or "-"
            ),
        ]
    return "\n".join(lines)


def format_cpu(per_request: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.2f}" for name, value in per_request.items())


def write_and_print(result: dict[str, Any]) -> None:
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print()
    print(format_table(result.get("ingest"), result.get("end_to_end")))
    print(f"gunicorn workers replaced during the run (recycled or crashed): {result['server'].get('workers_replaced')}")
    for phase in ("ingest", "end_to_end"):
        for name, ok in (result.get(phase) or {}).get("checks", {}).items():
            print(f"[bench] {'PASS' if ok else 'FAIL'}: {phase}: {name}")
    print(f"\nwritten to {RESULTS_FILE.relative_to(BASE_DIR)}")


def postmaster_pid(monitor: psycopg.Connection[Any]) -> int:
    row = monitor.execute("SELECT pg_backend_pid()").fetchone()
    return psutil.Process(int(row[0])).ppid() if row else 0


def cpu_groups(monitor: psycopg.Connection[Any], env: dict[str, str], server_pid: int) -> dict[str, PidSource]:
    """The processes whose CPU time is measured: gunicorn (master and workers), this run's
    PostgreSQL backends plus the server's background processes, Redis, this process. (The
    connections opened and closed in between are measured apart: :func:`postmaster_pid`.)"""
    import redis  # noqa: PLC0415 - only to ask the server its pid

    client = redis.Redis.from_url(env["REDIS_URL"])
    try:
        redis_pid = int(client.info("server")["process_id"])
    finally:
        client.close()

    def postgres() -> set[int]:
        rows = monitor.execute(
            "SELECT pid FROM pg_stat_activity WHERE (datname = %s AND pid <> pg_backend_pid())"
            " OR backend_type <> 'client backend'",
            [BENCH_DATABASE],
        ).fetchall()
        return {int(row[0]) for row in rows}

    return {
        "gunicorn": lambda: process_tree(server_pid),
        "postgres": postgres,
        "redis": lambda: {redis_pid},
        "runner (load, O2S sink)": lambda: {os.getpid()},
    }


# --- The run -------------------------------------------------------------------------------------------------


def gunicorn_command(args: argparse.Namespace, port: int) -> list[str]:
    """``sync`` (the default): as production starts it, everything from gunicorn.conf.py
    (sync workers, no keep-alive, worker recycling every 2,000 +- 200 requests), ``--workers``
    of them if given. Its recycling stays: a run's ~7,000 requests spread over 9 workers
    are ~800 each, so no worker restarts within a default run. ``gthread``: as
    ``benchmarks.invoice_create`` starts it (gunicorn.conf.py read from the project root,
    overridden by the flags), without worker recycling. Access log discarded."""
    if args.server == "gthread":
        command = ServerConfig(workers=args.workers or 2, threads=args.threads).command(port)
        # with 2 workers, gunicorn.conf.py's recycling every ~2,000 requests is a restart in
        # the middle of some batch, charged to whichever endpoint runs then
        command += ["--max-requests", "0"]
    else:
        command = [sys.executable, "-m", "gunicorn", "paymenter.wsgi:application", "--bind", f"127.0.0.1:{port}"]
        command += ["--log-level", "warning"]
    return [*command, "--access-logfile", "/dev/null"]


@contextlib.contextmanager
def running_gunicorn(command: list[str], env: dict[str, str], logfile: Path) -> Iterator[subprocess.Popen[bytes]]:
    """gunicorn in its own process group; everything it prints (a warning per refused
    delivery) goes to ``logfile`` instead of the terminal."""
    port = int(command[command.index("--bind") + 1].rsplit(":", 1)[1])
    with logfile.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - constant argv
            command, env=env, cwd=BASE_DIR, start_new_session=True, stdout=out, stderr=out
        )
    try:
        try:
            wait_until_serving(process, port)
        except BenchmarkError as exc:
            raise BenchmarkError(f"{exc}\n{logfile.read_text(errors='replace')[-4000:]}") from None
        yield process
    finally:
        stop_process_group(process)


def run(args: argparse.Namespace) -> int:  # noqa: PLR0915 - one straight script of phases
    signal.signal(signal.SIGINT, raise_keyboard_interrupt)
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    started_at = datetime.now(tz=UTC)
    load_at_start = [round(value, 2) for value in os.getloadavg()]
    try:
        environment = prepare_environment(dict(os.environ))
    except BenchmarkError as exc:
        print(f"[bench] FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    failures: list[str] = []
    result: dict[str, Any] = {}
    sink = CallbackSink()
    try:
        for note in environment.notes:
            log(note)
        owner_url = environment.variables["DATABASE_OWNER_URL"]
        with running_stripe_peer(WORKDIR) as peer:
            log(f"Stripe peer at {peer.api_base} (localstripe {peer.localstripe_url}); logs in {WORKDIR}")
            port = free_port()  # once the peer listens: free_port may hand out a port twice
            env = app_environment(environment, port=port, peer=peer, sink_port=sink.port)
            log(f"migrating {BENCH_DATABASE} as {dbroles.OWNER_ROLE}")
            subprocess.run([*MANAGE, "migrate", "--database", "owner", "--noinput", "-v", "0"], env=env, check=True)  # noqa: S603 - constant argv
            create_baseline_table(owner_url)
            command = gunicorn_command(args, port)
            if args.server == "sync":
                workers = args.workers or 4 * (os.cpu_count() or 1) + 1  # gunicorn.conf.py's default
                env.update(WEB_CONCURRENCY=str(workers), DB_POOL_MAX_SIZE="2")  # as in production
                log(f"starting gunicorn from gunicorn.conf.py ({workers} sync workers) on port {port}")
            else:
                log(f"starting gunicorn ({args.workers or 2} workers x {args.threads} threads, gthread) on port {port}")
            result = {
                "benchmark": "webhook_ingest",
                "started_at": started_at.isoformat(timespec="seconds"),
                "arguments": {k: v for k, v in vars(args).items() if k != "create_invoices"},
                "git": git_revision(),
                "machine": {
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                    "python": platform.python_version(),
                    "load_average_at_start": load_at_start,
                },
                "services": {"notes": environment.notes, "postgres": database_facts(owner_url)},
                "server": {
                    "command": "gunicorn " + " ".join(command[3:]).replace(f":{port}", ":<port>"),
                    "environment": {k: env[k] for k in ("WEB_CONCURRENCY", "DB_POOL_MAX_SIZE") if k in env},
                    "stripe": "devtools.stripe_peer + localstripe on loopback (fetch-back in the end-to-end phase)",
                },
            }
            with (
                running_gunicorn(command, env, peer.workdir / "gunicorn.log") as server,
                psycopg.connect(owner_url, autocommit=True) as monitor,
            ):
                groups = cpu_groups(monitor, env, server.pid)
                reaped = {REAPED_POSTGRES: postmaster_pid(monitor)}
                processes_at_start = process_tree(server.pid)
                if args.phase in {"both", "ingest"}:
                    meter = CpuMeter(groups, reaped)
                    result["ingest"], found = run_ingest(args, port=port, owner_url=owner_url, meter=meter)
                    failures += found
                if args.phase in {"both", "e2e"}:
                    result["end_to_end"], found = run_e2e(
                        args,
                        port=port,
                        env=env,
                        peer=peer,
                        sink=sink,
                        owner_url=owner_url,
                        groups=groups,
                        reaped=reaped,
                    )
                    failures += found
                # recycled (gunicorn.conf.py's max_requests) or crashed: each one a restart mid-run
                result["server"]["workers_replaced"] = len(processes_at_start - process_tree(server.pid))
        result["machine"]["load_average_at_end"] = [round(value, 2) for value in os.getloadavg()]
        result["failures"] = failures
        write_and_print(result)
        for failure in failures:
            print(f"[bench] FAILED: {failure}", file=sys.stderr)
    except KeyboardInterrupt:
        log("interrupted; stopping")
        return 130
    except (BenchmarkError, subprocess.CalledProcessError, requests.RequestException) as exc:
        print(f"[bench] FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    else:
        return 1 if failures else 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the cleanup
        sink.close()
        environment.stop(persist_redis=False)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.webhook_ingest", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events",
        type=int,
        default=3000,
        help="distinct events in the ingest phase (default 3000; keep the phase within the 300 s tolerance)",
    )
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent delivering clients (default 16)")
    parser.add_argument("--rounds", type=int, default=4, help="alternating ingest rounds per endpoint (default 4)")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured events per endpoint first (default 100)")
    parser.add_argument("--seed", type=int, default=1, help="the shuffle's seed (default 1)")
    parser.add_argument("--payments", type=int, default=200, help="paid invoices in the end-to-end phase (default 200)")
    parser.add_argument("--worker-concurrency", type=int, default=4, help="Celery prefork processes (default 4)")
    parser.add_argument(
        "--setup-concurrency", type=int, default=4, help="parallel payments while setting up (default 4)"
    )
    parser.add_argument("--e2e-timeout", type=float, default=120.0, help="seconds for every invoice to settle")
    parser.add_argument(
        "--server",
        choices=["sync", "gthread"],
        default="sync",
        help="sync: as production (gunicorn.conf.py; the default); gthread: as `make bench` (2 workers x 8 threads)",
    )
    parser.add_argument("--workers", type=int, default=0, help="gunicorn workers (gthread 2, sync 4 x cores + 1)")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker (default 8)")
    parser.add_argument("--phase", choices=["both", "ingest", "e2e"], default="both", help="run one phase only")
    parser.add_argument("--create-invoices", type=int, help=argparse.SUPPRESS)  # the runner's child
    args = parser.parse_args(argv)
    for name in ("events", "concurrency", "rounds", "payments", "worker_concurrency", "setup_concurrency"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.warmup < 0 or args.threads < 1 or args.workers < 0:
        parser.error("--warmup and --workers must be >= 0, --threads positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.create_invoices is not None:
        print(json.dumps(create_invoices(args.create_invoices)))
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
