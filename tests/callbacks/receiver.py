"""A real local HTTP receiver standing in for O2S: verifies every signature, records bodies.

``fail_next`` makes the next N requests answer 500; ``hang_seconds`` makes requests stall
past the client's timeout; ``down`` answers every request with 503.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from o2s.callback_signing import verify_callback_signature


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]
    signature_ok: bool

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    secrets: list[str]
    url: str = ""
    fail_next: int = 0
    hang_seconds: float = 0.0
    down: bool = False
    received: list[Received] = field(default_factory=list)  # accepted with 2xx
    requests: int = 0  # every request, including refused ones
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted_events(self, event_ids: set[str] | None = None) -> list[dict[str, Any]]:
        with self.lock:
            events = [item.event for item in self.received]
        return [event for event in events if event_ids is None or event["id"] in event_ids]

    def handle(self, body: bytes, headers: dict[str, str]) -> int:
        if self.hang_seconds:
            time.sleep(self.hang_seconds)
        with self.lock:
            self.requests += 1
            if self.down:
                return 503
            if self.fail_next > 0:
                self.fail_next -= 1
                return 500
            ok = verify_callback_signature(headers.get("Paymenter-Signature", ""), body, self.secrets)
            if not ok:
                return 401
            self.received.append(Received(body=body, headers=headers, signature_ok=ok))
            return 204


@contextmanager
def running_receiver(secrets: list[str]) -> Iterator[Receiver]:
    receiver = Receiver(secrets=secrets)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            try:
                status = receiver.handle(body, dict(self.headers.items()))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                pass

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/o2s/callbacks"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
