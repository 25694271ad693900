"""A local stand-in for O2S that verifies and logs the callbacks Paymenter sends (``make run``).

``python -m devtools.o2s_receiver --host 127.0.0.1 --port 8422 [--secrets S1,S2]``

Every ``POST`` (any path; ``make run`` uses ``/callbacks``) is checked with
:func:`o2s.callback_signing.verify_callback_signature`, the reference verifier of
docs/callbacks.md: 204 when the ``Paymenter-Signature`` matches one of the secrets, 401 when it
does not (Paymenter then retries, as it would against the real O2S). One line per callback
goes to stdout, e.g.::

    [o2s-receiver] invoice.paid INV-2026-000003 paid AUD 49.00 (signature ok)

Nothing else is kept, and neither secrets nor signatures are printed. The secrets come from
``--secrets`` or, without it, from ``O2S_CALLBACK_SECRETS`` (what ``make run`` uses, so a real
secret is not shown in the process list). Loopback only: it is a development tool.

Only the standard library and ``o2s.callback_signing`` (itself standard library only, and
importable without Django settings: ``o2s/__init__.py`` is empty) are imported.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO

from devtools.localstripe_launcher import is_loopback
from o2s.callback_signing import SIGNATURE_HEADER, verify_callback_signature

PREFIX = "[o2s-receiver]"
SECRETS_ENV = "O2S_CALLBACK_SECRETS"
MAX_BODY_BYTES = 1_048_576
# Currencies without minor units among those Paymenter invoices in (paymenter.money); this
# process deliberately does not import the app to format an amount.
ZERO_DECIMAL = frozenset({"JPY"})


def parse_secrets(value: str) -> list[str]:
    """``S1,S2`` as a list, as ``O2S_CALLBACK_SECRETS`` is read by the app."""
    return [secret.strip() for secret in value.split(",") if secret.strip()]


def format_amount(minor: object, currency: str) -> str:
    if not isinstance(minor, int) or isinstance(minor, bool):
        return "?"
    if currency.upper() in ZERO_DECIMAL:
        return f"{currency} {minor:,}"
    sign = "-" if minor < 0 else ""
    return f"{currency} {sign}{abs(minor) // 100:,}.{abs(minor) % 100:02d}"


def describe(body: bytes, *, signature_ok: bool) -> str:
    """The log line of one callback: event type, invoice number, status, amount."""
    verdict = "signature ok" if signature_ok else "BAD SIGNATURE: refused with 401"
    try:
        event = json.loads(body)
    except ValueError:
        return f"{PREFIX} unreadable body ({len(body)} bytes) ({verdict})"
    if not isinstance(event, dict):
        return f"{PREFIX} unexpected JSON ({verdict})"
    raw_data = event.get("data")
    data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
    currency = str(data.get("currency") or "")
    parts = [str(event.get("type") or "?"), str(data.get("invoice_number") or "?"), str(data.get("status") or "?")]
    parts.append(format_amount(data.get("total_minor"), currency))
    refunded = data.get("amount_refunded_minor")
    if isinstance(refunded, int) and refunded > 0:
        parts.append(f"refunded {format_amount(refunded, currency)}")
    due = data.get("amount_due_minor")
    if isinstance(due, int) and due > 0 and data.get("status") != "void":
        parts.append(f"due {format_amount(due, currency)}")
    return f"{PREFIX} {' '.join(parts)} ({verdict})"


class ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, secrets: Sequence[str], out: TextIO | None = None) -> None:
        self.secrets = list(secrets)
        self.out = out if out is not None else sys.stdout
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: ReceiverServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._answer(413)
            return
        body = self.rfile.read(length) if length else b""
        ok = verify_callback_signature(self.headers.get(SIGNATURE_HEADER, ""), body, self.server.secrets)
        print(describe(body, signature_ok=ok), file=self.server.out, flush=True)
        self._answer(204 if ok else 401)

    def do_GET(self) -> None:
        self._answer(200, b"O2S test receiver (make run): POST signed callbacks here; they are logged.\n")

    def _answer(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if body:
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()
        if body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return  # one line per callback is printed by do_POST, nothing else


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devtools.o2s_receiver", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument("--port", type=int, default=8422)
    parser.add_argument("--secrets", help=f"comma-separated callback secrets (default: ${SECRETS_ENV})")
    args = parser.parse_args(argv)
    if not is_loopback(args.host):
        parser.error(f"--host must be a loopback address, not {args.host!r}")
    secrets = parse_secrets(args.secrets if args.secrets is not None else os.environ.get(SECRETS_ENV, ""))
    if not secrets:
        parser.error(f"no secrets: pass --secrets or set {SECRETS_ENV}")
    server = ReceiverServer(args.host, args.port, secrets)
    print(f"{PREFIX} listening on http://{args.host}:{server.server_address[1]}/ (loopback only)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
