"""pytest fixtures for PayPal (``-p tests.paypal_peer_fixtures``): the local fake, a test PKI,
and signed deliveries.

* ``paypal_peer`` (session): ``devtools.paypal_peer`` as a subprocess on a free loopback port.
* ``paypal_pki`` (session): a test root CA, an intermediate and a leaf
  ``messageverificationcerts.paypal.com`` (RSA, valid 2020-2040: no test depends on today's
  date), made by ``devtools.paypal_peer.pki`` (as ``make run``'s); :func:`make_pki` makes
  others (another CA, an expired leaf).
* ``paypal_settings``: the app's PAYPAL_* settings aimed at a freshly reset fake (its client
  credentials, webhook id ``WH-ID-OURS``, the test root as ``PAYPAL_WEBHOOK_CA_FILE``,
  offline verification), and the fake signing its deliveries with the leaf's key under
  ``paypal_pki.cert_url``. No database needed.
* ``paypal_certificate``: ``paypal_settings`` plus the leaf seeded into the certificate cache
  by ``manage.py paypal_certificate_seed`` under ``https://api.paypal.com/v1/notifications/
  certs/CERT-...``, so the host rule stays strict. Needs database access: mark the test
  ``django_db`` or request ``committed_db`` (or ``live_url``) before it.

A test signs a delivery of its own with :func:`signed_delivery` (or lets the fake deliver:
``paypal_peer.configure(webhook_url=live_url + "/webhooks/paypal/", delivery="hold")``, then
``paypal_peer.release()``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from pytest_django.fixtures import Settings

from devtools.paypal_peer.harness import PaypalPeer, running_paypal_peer
from devtools.paypal_peer.pki import PaypalPKI, make_pki
from devtools.paypal_peer.signing import signed_headers
from gateways.paypal.client import paypal_clients_forget

__all__ = [
    "WEBHOOK_ID",
    "PaypalPKI",
    "PaypalPeer",
    "RecordingServer",
    "make_pki",
    "paypal_certificate",
    "paypal_peer",
    "paypal_pki",
    "paypal_settings",
    "recording_server",
    "seed_certificate",
    "signed_delivery",
]

WEBHOOK_ID = "WH-ID-OURS"


def signed_delivery(
    event: dict[str, Any],
    pki: PaypalPKI,
    *,
    webhook_id: str = WEBHOOK_ID,
    sent_at: str | None = None,
    cert_url: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """``event`` as PayPal delivers it: the JSON body and the ``PAYPAL-*`` headers, signed with
    ``pki``'s leaf key for ``webhook_id`` at ``sent_at`` (default: now), naming ``cert_url``
    (default: ``pki.cert_url``)."""
    body = json.dumps(event).encode()
    headers = signed_headers(
        body,
        webhook_id=webhook_id,
        private_key_pem=pki.key_pem,
        cert_url=cert_url or pki.cert_url,
        sent_at=sent_at,
    )
    return body, headers


class _Recorder(BaseHTTPRequestHandler):
    server: RecordingServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((body, dict(self.headers.items())))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class RecordingServer(ThreadingHTTPServer):
    """A loopback HTTP server that keeps every POST (body, headers) and answers 200: where
    the fake delivers webhooks when a test wants to hand them to the app itself."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.received: list[tuple[bytes, dict[str, str]]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


@contextmanager
def recording_server() -> Iterator[RecordingServer]:
    server = RecordingServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def seed_certificate(pki: PaypalPKI, directory: Path, *, url: str | None = None) -> None:
    """``manage.py paypal_certificate_seed`` with ``pki``'s chain for ``url`` (its cert URL)."""
    call_command("paypal_certificate_seed", url=url or pki.cert_url, pem=str(pki.write_chain(directory)))


@pytest.fixture(scope="session")
def paypal_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaypalPeer]:
    """The PayPal fake as a subprocess on a free loopback port, for the whole session."""
    with running_paypal_peer(tmp_path_factory.mktemp("paypal_peer")) as peer:
        yield peer


@pytest.fixture(scope="session")
def paypal_pki() -> PaypalPKI:
    return make_pki()


@pytest.fixture
def paypal_settings(
    paypal_peer: PaypalPeer, paypal_pki: PaypalPKI, settings: Settings, tmp_path: Path
) -> Iterator[PaypalPeer]:
    """The app's PayPal settings aimed at a freshly reset fake that signs with ``paypal_pki``."""
    paypal_peer.reset()
    paypal_peer.configure(webhook_id=WEBHOOK_ID, signing_key_pem=paypal_pki.key_pem, cert_url=paypal_pki.cert_url)
    settings.PAYPAL_API_BASE = paypal_peer.api_base
    settings.PAYPAL_CLIENT_ID = paypal_peer.client_id
    settings.PAYPAL_CLIENT_SECRET = paypal_peer.client_secret
    settings.PAYPAL_WEBHOOK_ID = WEBHOOK_ID
    settings.PAYPAL_TIMEOUT_SECONDS = 10
    settings.PAYPAL_WEBHOOK_VERIFICATION = "offline"
    settings.PAYPAL_CHECKOUT_ORIGIN = ""
    settings.PAYPAL_WEBHOOK_CA_FILE = str(paypal_pki.write_root(tmp_path))
    paypal_clients_forget()  # a client of an earlier test holds a token the reset fake forgot
    yield paypal_peer
    paypal_clients_forget()


@pytest.fixture
def paypal_certificate(paypal_settings: PaypalPeer, paypal_pki: PaypalPKI, tmp_path: Path) -> PaypalPKI:
    """``paypal_pki``'s certificate seeded for its cert URL (needs database access)."""
    seed_certificate(paypal_pki, tmp_path)
    return paypal_pki
