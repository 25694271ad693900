"""``python -m devtools``: the commands behind ``make run`` and ``make test``.

* ``run``: provision PostgreSQL and Redis (embedded unless ``DATABASE_URL`` / ``REDIS_URL``
  are set), migrate as the owner role, load the demo data, then serve on 127.0.0.1:8000 with a
  Celery worker. Without ``STRIPE_SECRET_KEY`` it first starts the local Stripe test peer
  (localstripe + ``devtools.stripe_peer``: a test double, no real money), without
  ``PAYPAL_CLIENT_ID`` the local PayPal fake (``devtools.paypal_peer``, with a development PKI
  whose certificate it seeds), and with either a local O2S receiver that logs the callbacks
  (``devtools.o2s_receiver``), and points the app at them (:func:`offline_payments`). Ctrl-C
  stops the children, then the embedded servers.
* ``manage ARGS...``: ``manage.py ARGS`` in the development environment.
* ``test-manage ARGS...``: ``manage.py ARGS`` in the test environment (used for
  ``makemigrations --check --dry-run`` in ``make test``).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from devtools.paypal_peer.pki import PkiFiles, pki_ensure
from devtools.paypal_peer.server import DEFAULT_CLIENT_ID as PAYPAL_FAKE_CLIENT_ID
from devtools.paypal_peer.server import DEFAULT_CLIENT_SECRET as PAYPAL_FAKE_CLIENT_SECRET
from devtools.provision import BASE_DIR, Environment, data_dir, prepare_environment

MANAGE = [sys.executable, str(BASE_DIR / "manage.py")]
_STOP_TIMEOUT_SECONDS = 15
_STARTUP_TIMEOUT_SECONDS = 30

HOST = "127.0.0.1"
APP_URL = f"http://{HOST}:8000"
LOCALSTRIPE_PORT = 8420
STRIPE_PEER_PORT = 8421
O2S_RECEIVER_PORT = 8422
PAYPAL_PEER_PORT = 8423
# Public, deterministic values for the offline demo only: the peer takes any sk_test_ key and
# signs its webhooks with this secret, which the app is told to accept.
LOCAL_PEER_SECRET_KEY = "sk_test_local_peer"  # noqa: S105 - a public development value
LOCAL_PEER_WEBHOOK_SECRET = "whsec_dev_local_peer"  # noqa: S105 - a public development value
TEST_CARD = "4000 0025 0000 3155"
# The PayPal fake's: its client credentials (PAYPAL_FAKE_CLIENT_ID/SECRET, public), the webhook
# id it signs for, and the certificate URL it names. That URL is one PayPal could name (https on
# api.paypal.com), so the app's host rule is not relaxed: the app never fetches it, because
# the development leaf is seeded for it before the app starts.
LOCAL_PAYPAL_WEBHOOK_ID = "WH-LOCAL-PAYPAL-FAKE"
LOCAL_PAYPAL_CERT_URL = "https://api.paypal.com/v1/notifications/certs/CERT-paymenter-local-fake"
LOCAL_PAYPAL_ROOT_NAME = "Paymenter Development Root CA (make run only)"
LOCAL_PAYPAL_ORGANIZATION = "Paymenter development PKI - trust nowhere else"


@dataclass(frozen=True)
class ExtraProcess:
    """A helper started before the app: ``name`` for messages, ``command`` to run."""

    name: str
    command: list[str]


@dataclass(frozen=True)
class OfflinePayments:
    """What ``make run`` adds for payments: extra processes, environment, setup and notes.

    Empty (nothing made, started or changed) when both ``STRIPE_SECRET_KEY`` and
    ``PAYPAL_CLIENT_ID`` are set.
    """

    processes: list[ExtraProcess] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    # what -> its /_peer/health URL: each must answer before the app starts
    health_urls: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    stripe_fake: bool = False
    # The PayPal fake's development PKI: made (once) before anything starts, since the fake
    # signs with its key and the app trusts its root. None: no PayPal fake.
    paypal_pki: PkiFiles | None = None
    # manage.py commands to run after the migrations, before the app starts.
    after_migrate: list[list[str]] = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return bool(self.processes)

    @property
    def paypal_fake(self) -> bool:
        return self.paypal_pki is not None


def _dev_callback_secrets() -> str:
    """The development default of ``O2S_CALLBACK_SECRETS`` (what the app signs with unless set)."""
    from paymenter.settings import DEV_DEFAULT_SECRETS  # noqa: PLC0415 - settings only when needed

    return DEV_DEFAULT_SECRETS["O2S_CALLBACK_SECRETS"]


def offline_payments(
    environ: Mapping[str, str],
    *,
    state_dir: Path,
    paypal_dir: Path,
    localstripe_port: int = LOCALSTRIPE_PORT,
    peer_port: int = STRIPE_PEER_PORT,
    receiver_port: int = O2S_RECEIVER_PORT,
    paypal_port: int = PAYPAL_PEER_PORT,
    python: str = sys.executable,
    dev_callback_secrets: str | None = None,
) -> OfflinePayments:
    """Decide, without starting anything, what ``make run`` adds for payments.

    ``environ`` is the environment the app's children would get. With ``STRIPE_SECRET_KEY``
    set, the real Stripe (or whatever ``STRIPE_API_BASE`` names) is used; without it,
    localstripe (state in ``state_dir``) and the Stripe peer in front of it delivering webhooks
    to runserver. With ``PAYPAL_CLIENT_ID`` set, the real PayPal (``PAYPAL_API_BASE``) is used;
    without it, the PayPal fake, delivering webhooks signed with the leaf key of a development
    PKI in ``paypal_dir``; the app trusts that PKI's root and has the leaf seeded for the
    fake's certificate URL (:attr:`OfflinePayments.after_migrate`). When either fake runs and
    ``O2S_CALLBACK_URL`` is not set, the O2S receiver too; it reads its secrets from
    ``O2S_CALLBACK_SECRETS`` in that same environment, so both sides agree. The children's
    environment points the app at them all.
    """
    processes: list[ExtraProcess] = []
    env: dict[str, str] = {}
    health_urls: dict[str, str] = {}
    notes: list[str] = []
    after_migrate: list[list[str]] = []
    stripe_fake = not environ.get("STRIPE_SECRET_KEY")
    paypal_pki = None if environ.get("PAYPAL_CLIENT_ID") else PkiFiles(paypal_dir)
    if stripe_fake:
        localstripe_url = f"http://{HOST}:{localstripe_port}"
        peer_url = f"http://{HOST}:{peer_port}"
        processes += [
            ExtraProcess(
                "localstripe",
                [
                    *(python, "-m", "devtools.localstripe_launcher", "--host", HOST, "--port", str(localstripe_port)),
                    *("--state-dir", str(state_dir)),
                ],
            ),
            ExtraProcess(
                "stripe peer",
                [
                    *(python, "-m", "devtools.stripe_peer", "--host", HOST, "--port", str(peer_port)),
                    *("--localstripe-url", localstripe_url),
                    *("--webhook-url", f"{APP_URL}/webhooks/stripe/"),
                    *("--webhook-secret", LOCAL_PEER_WEBHOOK_SECRET, "--delivery", "deliver"),
                ],
            ),
        ]
        env |= {
            "STRIPE_SECRET_KEY": LOCAL_PEER_SECRET_KEY,
            "STRIPE_API_BASE": peer_url,
            "STRIPE_WEBHOOK_SECRETS": LOCAL_PEER_WEBHOOK_SECRET,
        }
        health_urls["the Stripe peer"] = f"{peer_url}/_peer/health"
        notes.append(
            f"Stripe: local TEST DOUBLE at {peer_url} (localstripe behind it on :{localstripe_port}): "
            "no real money moves; webhooks go to /webhooks/stripe/"
        )
    if paypal_pki is not None:
        paypal_url = f"http://{HOST}:{paypal_port}"
        processes.append(
            ExtraProcess(
                "paypal fake",
                [
                    *(python, "-m", "devtools.paypal_peer", "--host", HOST, "--port", str(paypal_port)),
                    *("--webhook-url", f"{APP_URL}/webhooks/paypal/", "--webhook-id", LOCAL_PAYPAL_WEBHOOK_ID),
                    *("--signing-key-file", str(paypal_pki.key), "--cert-url", LOCAL_PAYPAL_CERT_URL),
                    *("--delivery", "deliver"),
                ],
            )
        )
        env |= {
            "PAYPAL_CLIENT_ID": PAYPAL_FAKE_CLIENT_ID,
            "PAYPAL_CLIENT_SECRET": PAYPAL_FAKE_CLIENT_SECRET,
            "PAYPAL_API_BASE": paypal_url,
            "PAYPAL_WEBHOOK_ID": LOCAL_PAYPAL_WEBHOOK_ID,
            "PAYPAL_WEBHOOK_CA_FILE": str(paypal_pki.root),
        }
        health_urls["the PayPal fake"] = f"{paypal_url}/_peer/health"
        after_migrate.append(
            [
                *(python, str(BASE_DIR / "manage.py"), "paypal_certificate_seed"),
                *("--url", LOCAL_PAYPAL_CERT_URL, "--pem", str(paypal_pki.chain)),
            ]
        )
        notes.append(
            f"PayPal: local TEST DOUBLE at {paypal_url}: no real money moves; signed webhooks go to "
            f"/webhooks/paypal/ (development PKI in {paypal_pki.directory}, trusted by this app only)"
        )
    if not processes:
        return OfflinePayments()
    if environ.get("O2S_CALLBACK_URL"):
        notes.append("O2S callbacks: sent to O2S_CALLBACK_URL as you set it (no local receiver started)")
    else:
        receiver_url = f"http://{HOST}:{receiver_port}/callbacks"
        processes.append(
            ExtraProcess(
                "o2s receiver",
                [python, "-m", "devtools.o2s_receiver", "--host", HOST, "--port", str(receiver_port)],
            )
        )
        env["O2S_CALLBACK_URL"] = receiver_url
        if not environ.get("O2S_CALLBACK_SECRETS"):
            env["O2S_CALLBACK_SECRETS"] = (
                dev_callback_secrets if dev_callback_secrets is not None else _dev_callback_secrets()
            )
        notes.append(f"O2S callbacks: verified and logged below as [o2s-receiver] lines ({receiver_url})")
    return OfflinePayments(
        processes=processes,
        env=env,
        health_urls=health_urls,
        notes=notes,
        stripe_fake=stripe_fake,
        paypal_pki=paypal_pki,
        after_migrate=after_migrate,
    )


def local_paypal_pki_ensure(files: PkiFiles) -> PkiFiles:
    """``make run``'s development PKI for the PayPal fake, made in ``files.directory`` the first
    time and kept: the root the app trusts, the chain seeded for :data:`LOCAL_PAYPAL_CERT_URL`,
    the key the fake signs with."""
    return pki_ensure(files.directory, root_name=LOCAL_PAYPAL_ROOT_NAME, organization=LOCAL_PAYPAL_ORGANIZATION)


def _port_or_free(preferred: int) -> int:
    """``preferred`` if nothing listens there on 127.0.0.1, else a free port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers bind: connections of a previous run in TIME_WAIT do not make it busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, preferred))
        except OSError:
            sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _child_env(environment: Environment) -> dict[str, str]:
    child = dict(os.environ)
    child.update(environment.variables)
    child.setdefault("PAYMENTER_ENV", "development")
    if child["PAYMENTER_ENV"] == "development":
        child.setdefault("DEBUG", "true")
    return child


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each child's process group (runserver's reloader, Celery's pool), then wait."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_TIMEOUT_SECONDS
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class StartupError(RuntimeError):
    """A child did not come up."""


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own loopback URL
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _wait_for(url: str, what: str, processes: list[subprocess.Popen[bytes]]) -> None:
    """Until ``url`` answers 200; fails if a child exits or it takes too long."""
    deadline = time.monotonic() + _STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if any(process.poll() is not None for process in processes):
            raise StartupError(f"a child process exited while waiting for {what}")
        if _answers(url):
            return
        time.sleep(0.2)
    raise StartupError(f"{what} did not answer at {url} within {_STARTUP_TIMEOUT_SECONDS}s")


def _demo_pay_link(env: dict[str, str]) -> str:
    """``<number> <amount> <url>`` of an open demo invoice (``manage.py demo_pay_link``)."""
    result = subprocess.run([*MANAGE, "demo_pay_link"], env=env, check=True, capture_output=True, text=True)
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""


def _how_to_pay(pay_link: str, payments: OfflinePayments) -> list[str]:
    if not pay_link:
        return []
    number, _, rest = pay_link.partition(" ")
    amount, _, url = rest.rpartition(" ")
    lines = [f"pay demo invoice {number} ({amount} due): {url}"]
    if payments.stripe_fake:
        lines.append(
            f'  press "Pay by card"; on the test-double checkout page use the card {TEST_CARD} '
            '(3-D Secure: press "Complete authentication"), any expiry and CVC'
        )
    if payments.paypal_fake:
        lines.append(
            '  or press "Pay with PayPal"; on the PayPal TEST DOUBLE\'s page press "Approve" '
            "(no real money moves; no PayPal login)"
        )
    return lines


def run() -> int:
    # Explicitly, because a shell starting us in the background leaves SIGINT ignored.
    signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    environment = prepare_environment(test=False)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        env = _child_env(environment)
        payments = offline_payments(
            env,
            state_dir=data_dir() / "localstripe",
            paypal_dir=data_dir() / "paypal",
            localstripe_port=_port_or_free(LOCALSTRIPE_PORT),
            peer_port=_port_or_free(STRIPE_PEER_PORT),
            receiver_port=_port_or_free(O2S_RECEIVER_PORT),
            paypal_port=_port_or_free(PAYPAL_PEER_PORT),
        )
        env.update(payments.env)
        if payments.paypal_pki is not None:
            local_paypal_pki_ensure(payments.paypal_pki)
        for note in environment.notes:
            print(f"[devtools] {note}", flush=True)
        subprocess.run([*MANAGE, "migrate", "--database", "owner", "--noinput"], env=env, check=True)
        subprocess.run([*MANAGE, "load_demo_data"], env=env, check=True)
        for command in payments.after_migrate:
            subprocess.run(command, env=env, check=True)
        pay_link = _demo_pay_link(env)
        # Own process groups: Ctrl-C reaches only this launcher, which stops children in order.
        processes.extend(
            subprocess.Popen(extra.command, env=env, start_new_session=True) for extra in payments.processes
        )
        for what, url in payments.health_urls.items():
            _wait_for(url, what, processes)
        schedule = data_dir() / "celerybeat-schedule"
        commands = [
            [*MANAGE, "runserver", "127.0.0.1:8000"],
            # -B runs beat inside the worker: fine for one developer machine, never in production.
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "paymenter",
                "worker",
                "--beat",
                "--schedule",
                str(schedule),
                "--concurrency",
                "2",
                "--loglevel",
                "INFO",
            ],
        ]
        processes.extend(subprocess.Popen(command, env=env, start_new_session=True) for command in commands)
        _wait_for(f"{APP_URL}/healthz", "runserver", processes)
        for line in [*payments.notes, *_how_to_pay(pay_link, payments)]:
            print(f"[devtools] {line}", flush=True)
        print(
            f"[devtools] serving {APP_URL}/ (admin: /admin/) with a Celery worker; Ctrl-C stops all",
            flush=True,
        )
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\n[devtools] stopping", flush=True)
        return 0
    except subprocess.CalledProcessError as exc:
        print(f"[devtools] {exc}", file=sys.stderr, flush=True)
        if exc.stderr:
            print(exc.stderr, file=sys.stderr, flush=True)
        return exc.returncode or 1
    except StartupError as exc:
        print(f"[devtools] {exc}; stopping the rest", file=sys.stderr, flush=True)
        return 1
    else:
        print("[devtools] a child process exited; stopping the rest", file=sys.stderr, flush=True)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the cleanup
        _stop(processes)
        environment.stop()


def manage(arguments: list[str], *, test: bool) -> int:
    environment = prepare_environment(test=test)
    try:
        return subprocess.run([*MANAGE, *arguments], env=_child_env(environment), check=False).returncode
    finally:
        environment.stop(persist_redis=not test)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="serve the app with a Celery worker (make run)")
    for name in ("manage", "test-manage"):
        where = "test" if name == "test-manage" else "development"
        sub = commands.add_parser(name, help=f"manage.py in the {where} environment")
        sub.add_argument("arguments", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "run":
        return run()
    return manage(args.arguments, test=args.command == "test-manage")


if __name__ == "__main__":
    sys.exit(main())
