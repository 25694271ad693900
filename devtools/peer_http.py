"""The HTTP plumbing of the local gateway test doubles (:mod:`devtools.stripe_peer`, :mod:`devtools.paypal_peer`).

A peer is one object with ``handle(request) -> reply``: it sees a :class:`Request` (method, path,
query, headers, body, the caller's address) and answers a :class:`Reply`, so its logic reads as
plain functions and never touches a socket. :class:`PeerServer` does the rest: a stdlib threading
server (one thread per connection; throughput is not a goal) that hands every request, whatever
its method, to ``server.peer.handle`` and writes the reply with its length. Webhooks go the other
way through a :class:`WebhookQueue`: sent in order on one background thread, so that a reply
(the browser's redirect, say) never waits on the app's webhook endpoint.

What differs between the peers stays in them: their error formats, the response headers that
only one gateway sends (Stripe's ``Request-Id``, PayPal's ``Paypal-Debug-Id``), and how the
control API refuses a caller that is not on loopback.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import socket
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import parse_qsl, urlsplit

from requests.structures import CaseInsensitiveDict


@dataclasses.dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    headers: Mapping[str, str]  # looked up case-insensitively, as HTTP names headers
    body: bytes
    client: str  # the caller's address: the control APIs answer loopback only

    def params(self) -> list[tuple[str, str]]:
        """The query string's pairs, in order, repeated and blank ones kept."""
        return parse_qsl(self.query, keep_blank_values=True)

    def form(self) -> list[tuple[str, str]]:
        """The URL-encoded body's pairs, in order, repeated and blank ones kept."""
        return parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True)


@dataclasses.dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)


def json_reply(status: int, data: Any, **headers: str) -> Reply:
    return Reply(status, json.dumps(data, indent=2).encode(), "application/json", headers)


def html_reply(status: int, html: str) -> Reply:
    return Reply(status, html.encode(), "text/html; charset=utf-8")


def text_reply(status: int, text: str) -> Reply:
    return Reply(status, text.encode(), "text/plain; charset=utf-8")


def see_other(location: str) -> Reply:
    return Reply(303, b"", "text/plain", {"Location": location})


class PeerApp(Protocol):
    """What :class:`PeerServer` serves: each peer's ``Peer`` class."""

    def handle(self, request: Request) -> Reply: ...


class _Handler(BaseHTTPRequestHandler):
    server: PeerServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(self.headers.items())
        request = Request(self.command, url.path, url.query, headers, body, self.client_address[0])
        reply = self.server.peer.handle(request)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        self.server.logger.info("%s %s", self.address_string(), format % args)


class PeerServer(ThreadingHTTPServer):
    """Bound on construction (port 0: a free one); set ``peer`` before ``serve_forever``."""

    daemon_threads = True
    peer: PeerApp

    def __init__(self, host: str, port: int, *, logger: logging.Logger) -> None:
        self.host = host
        self.logger = logger  # the peer's own: its access log reads as the peer's
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), _Handler)

    @property
    def base_url(self) -> str:
        """``http://host:port`` as given (an IPv6 address in brackets), with the port it bound:
        the base of the URLs the peer hands out."""
        authority = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{authority}:{self.server_address[1]}"


WebhookConfigT = TypeVar("WebhookConfigT")


class WebhookQueue(Generic[WebhookConfigT]):
    """Events to deliver, in order, on one daemon thread, each with the peer's webhook settings
    as they were when it was emitted. ``skip_queued`` (a peer's reset) drops what is still
    waiting, so one test's events never reach the next test's app."""

    def __init__(self, deliver: Callable[[dict[str, Any], WebhookConfigT], object], *, thread_name: str) -> None:
        self._deliver = deliver
        self._queue: queue.Queue[tuple[int, dict[str, Any], WebhookConfigT]] = queue.Queue()
        self._generation = 0
        threading.Thread(target=self._deliver_forever, name=thread_name, daemon=True).start()

    def put(self, event: dict[str, Any], config: WebhookConfigT) -> None:
        self._queue.put((self._generation, event, config))

    def skip_queued(self) -> None:
        self._generation += 1

    def _deliver_forever(self) -> None:
        while True:
            generation, event, config = self._queue.get()
            if generation == self._generation:
                self._deliver(event, config)
