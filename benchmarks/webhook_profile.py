"""``python -m benchmarks.webhook_profile``: where one ``POST /webhooks/stripe/`` spends its time.

Companion of ``benchmarks.webhook_ingest`` (docs/performance.md, "Webhook ingest"). On a fresh
database (``paymenter_bench_webhooks_profile``, same provisioning) it sends ``--requests``
signed deliveries of each kind (new event, exact duplicate, bad signature) and as many
one-INSERT baseline requests through Django's test client, one at a time, in one process,
and reports:

* the mean wall and CPU time of each step of the webhook view, measured by wrapping the
  functions that do it (the view itself, so what Django and the middleware add is the rest;
  strict JSON parse, the HMAC, body encryption, the one statement that sets the RLS scope,
  inserts into the inbox and the outbox and commits, the nudge to the broker after it, the
  refusal count in Redis), the SQL statements of one request, and what the refusal gate in
  front of Django (not run by the test client) costs per request;
* the top of a cProfile of the same requests (``--cprofile``), by cumulative time.

No concurrency: these are the costs of one request, which at 16 concurrent clients on a few
cores are paid in CPU (the Python parts) or in waiting (the round trips).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import json
import os
import pstats
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from benchmarks.invoice_create import (
    MANAGE,
    BenchmarkError,
    child_environment,
    create_baseline_table,
    log,
    prepare_environment,
)
from benchmarks.webhook_ingest import (
    STRIPE_KEY,
    WEBHOOK_PATH,
    WEBHOOK_SECRET,
    Delivery,
    Signer,
    synthetic_events,
)
from devtools.provision import BASE_DIR

PROFILE_DATABASE = "paymenter_bench_webhooks_profile"
VIEW = "the view (_receive: verify, store, answer)"
VERIFY = "  verify (total)"
STORE = "  store (total: encrypt, one statement, nudge)"
STATEMENT = "    inbox + outbox: one statement, RLS scope, COMMIT (1 round trip; + pool checkout)"
STORE_STEPS = ("    body encryption (pre_save)", STATEMENT, "    after COMMIT: the nudge (LPUSH to Redis)")
REST = "    rest: Python around them"


class Timers:
    """Accumulated wall and CPU (this thread's) time per label, for the current kind of request."""

    def __init__(self) -> None:
        self.labels: list[str] = []  # in the order they were wrapped: the order of the steps
        self.totals: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0]))
        self.kind = "warmup"

    def wrap(self, label: str, function: Callable[..., Any]) -> Callable[..., Any]:
        self.labels.append(label)

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                total = self.totals[self.kind][label]
                total[0] += time.perf_counter() - wall
                total[1] += time.thread_time() - cpu

        return timed


def instrument(timers: Timers) -> None:
    """Wrap, where the code under test looks them up, the functions each step runs."""
    import stripe  # noqa: PLC0415 - Django is set up by now

    from gateways.models import WebhookEvent  # noqa: PLC0415
    from gateways.services import inbox  # noqa: PLC0415
    from gateways.stripe import adapter  # noqa: PLC0415
    from gateways.stripe import webhooks as stripe_webhooks  # noqa: PLC0415
    from paymenter import outbox  # noqa: PLC0415
    from webhooks import views  # noqa: PLC0415

    def patch(owner: Any, name: str, label: str, *, static: bool = False) -> None:
        wrapped = timers.wrap(label, getattr(owner, name))
        setattr(owner, name, staticmethod(wrapped) if static else wrapped)

    patch(views, "_receive", VIEW)
    patch(adapter, "stripe_webhook_verify", VERIFY)
    patch(stripe_webhooks, "stripe_event_parse", "    event parse (strict JSON + checks)")
    patch(stripe_webhooks, "json_loads_strict", "      of which strict JSON parse")
    patch(stripe.WebhookSignature, "verify_header", "    HMAC (verify_header)", static=True)
    patch(views, "webhook_event_store", STORE)
    patch(WebhookEvent._meta.get_field("body"), "pre_save", STORE_STEPS[0])
    patch(inbox, "outbox_enqueue_if_inserted", STATEMENT)
    patch(outbox, "outbox_nudge", STORE_STEPS[2])
    patch(views, "refusal_record", "  refusal count (Redis)")


def profile_child(count: int, use_cprofile: bool) -> dict[str, Any]:  # noqa: PLR0915 - one script
    import django  # noqa: PLC0415 - the runner itself never loads Django

    django.setup()
    from django.db import connection  # noqa: PLC0415
    from django.test import Client  # noqa: PLC0415
    from django.test.utils import CaptureQueriesContext  # noqa: PLC0415

    from paymenter.metrics import Metric  # noqa: PLC0415
    from paymenter.refusals import RefusalKind, refusal_gate  # noqa: PLC0415

    timers = Timers()
    instrument(timers)
    signer = Signer()
    client = Client()
    events = synthetic_events("prof", 2 * count + 50)
    forgeries = synthetic_events("prof_bad", count + 20)
    plans: dict[str, list[Delivery]] = {
        "warmup": [Delivery("event", i, b) for i, b in events[:50]]
        + [Delivery("bad", i, b) for i, b in forgeries[:20]],
        "event": [Delivery("event", i, b) for i, b in events[50 : 50 + count]],
        "duplicate": [Delivery("duplicate", i, b) for i, b in events[50 : 50 + count]],
        "bad": [Delivery("bad", i, b) for i, b in forgeries[20:]],
    }
    walls: dict[str, tuple[float, float]] = {}
    statements: dict[str, list[str]] = {}
    profiler = cProfile.Profile()

    def post(delivery: Delivery) -> int:
        response = client.post(
            WEBHOOK_PATH,
            data=delivery.body,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=signer.header(delivery),
        )
        return int(response.status_code)

    for kind, deliveries in plans.items():
        timers.kind = kind
        for delivery in deliveries:  # signatures made before the clock starts
            signer.header(delivery)
        with CaptureQueriesContext(connection) as queries:
            post(deliveries[0])
        statements[kind] = [str(query["sql"])[:160] for query in queries.captured_queries]
        timers.totals[kind].clear()
        started, cpu = time.perf_counter(), time.thread_time()
        if use_cprofile and kind == "event":
            profiler.enable()
        statuses = [post(delivery) for delivery in deliveries[1:]]
        profiler.disable()
        walls[kind] = (time.perf_counter() - started, time.thread_time() - cpu)
        expected = 400 if kind == "bad" else 200
        if kind != "warmup" and any(status != expected for status in statuses):
            raise BenchmarkError(f"{kind}: unexpected statuses {sorted(set(statuses))}")

    baseline_body = plans["event"][0].body
    with CaptureQueriesContext(connection) as queries:
        client.post("/bench/baseline-insert/", data=baseline_body, content_type="application/json")
    statements["baseline"] = [str(query["sql"])[:160] for query in queries.captured_queries]
    started, cpu = time.perf_counter(), time.thread_time()
    for _ in range(count - 1):
        client.post("/bench/baseline-insert/", data=baseline_body, content_type="application/json")
    walls["baseline"] = (time.perf_counter() - started, time.thread_time() - cpu)

    started = time.perf_counter()
    for _ in range(count):
        refusal_gate(kind=RefusalKind.API, source="127.0.0.1", metric=Metric.REFUSALS_RATE_LIMITED)
    gate_ms = (time.perf_counter() - started) / count * 1000

    per_request = count - 1
    for kind in ("event", "duplicate"):
        totals = timers.totals[kind]
        # the statement's timer includes the nudge it runs after COMMIT: count it once
        totals[STATEMENT] = [totals[STATEMENT][i] - totals[STORE_STEPS[2]][i] for i in (0, 1)]
        totals[REST] = [totals[STORE][i] - sum(totals[label][i] for label in STORE_STEPS) for i in (0, 1)]
    order = [*timers.labels, REST]

    def ms(value: float) -> float:
        return round(value / per_request * 1000, 3)

    result: dict[str, Any] = {
        "requests_per_kind": per_request,
        "mean_request_ms": {
            kind: {"wall": ms(walls[kind][0]), "cpu": ms(walls[kind][1])}
            for kind in ("event", "duplicate", "bad", "baseline")
        },
        "refusal_gate_ms": round(gate_ms, 3),
        "steps_mean_ms": {
            kind: {
                label: {"wall": ms(timers.totals[kind][label][0]), "cpu": ms(timers.totals[kind][label][1])}
                for label in sorted(timers.totals[kind], key=order.index)
            }
            for kind in ("event", "duplicate", "bad")
        },
        "sql_statements": statements,
    }
    if use_cprofile:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(45)
        result["cprofile_event_top"] = out.getvalue()
    return result


def run(args: argparse.Namespace) -> int:
    environment = prepare_environment(dict(os.environ), database=PROFILE_DATABASE, tag="bench-webhooks-profile")
    try:
        env = child_environment(environment)
        env.update(
            STRIPE_SECRET_KEY=STRIPE_KEY,
            STRIPE_WEBHOOK_SECRETS=WEBHOOK_SECRET,
            REFUSAL_LIMIT_PER_WINDOW="1000000000",
        )
        log("migrating")
        subprocess.run([*MANAGE, "migrate", "--database", "owner", "--noinput", "-v", "0"], env=env, check=True)  # noqa: S603 - constant argv
        create_baseline_table(environment.variables["DATABASE_OWNER_URL"])
        log(f"profiling {args.requests} requests per kind, one at a time (Django test client)")
        command = [sys.executable, "-m", "benchmarks.webhook_profile", "--child", "--requests", str(args.requests)]
        if args.cprofile:
            command.append("--cprofile")
        completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False, cwd=BASE_DIR)  # noqa: S603 - constant argv
    except subprocess.CalledProcessError as exc:
        print(f"[bench] FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        environment.stop(persist_redis=False)
    if completed.returncode != 0:
        print(f"[bench] FAILED:\n{completed.stderr[-4000:]}", file=sys.stderr, flush=True)
        return 1
    print_result(json.loads(completed.stdout.strip().splitlines()[-1]))
    return 0


def print_result(result: dict[str, Any]) -> None:
    print(f"\nmean ms per request, one at a time, {result['requests_per_kind']} per kind (Django test client):")
    print(f"  {'':<10} {'wall':>8} {'CPU':>8}")
    for kind, value in result["mean_request_ms"].items():
        print(f"  {kind:<10} {value['wall']:8.3f} {value['cpu']:8.3f}")
    print(f"  + the refusal gate in front of Django (every /webhooks/ request): {result['refusal_gate_ms']:.3f} wall")
    for kind, steps in result["steps_mean_ms"].items():
        print(f"\nsteps of a '{kind}' delivery (mean ms per request; CPU = this process's thread):")
        print(f"  {'':<76} {'wall':>8} {'CPU':>8}")
        for label, value in steps.items():
            print(f"  {label:<76} {value['wall']:8.3f} {value['cpu']:8.3f}")
    for kind, statements in result["sql_statements"].items():
        print(f"\nSQL of one '{kind}' request ({len(statements)} statements):")
        for statement in statements:
            print(f"  {' '.join(statement.split())[:150]}")
    if "cprofile_event_top" in result:
        print("\ncProfile of the 'event' requests, by cumulative time:")
        print(result["cprofile_event_top"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.webhook_profile", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="requests per kind (default 500)")
    parser.add_argument("--cprofile", action="store_true", help="also print the top of a cProfile")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.requests < 2:
        parser.error("--requests must be at least 2")
    if args.child:
        print(json.dumps(profile_child(args.requests, args.cprofile)))
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
