"""Count what an application sends PostgreSQL, on the wire: a counting TCP proxy.

Why on the wire: it is what the server executes, whatever sent it. Django's
``CaptureQueriesContext`` sees only the statements that go through Django's cursor wrappers
(and, in 5.2, the transaction commands Django issues itself); it misses what psycopg and its
pool send on their own (the ``BEGIN`` psycopg sends before the first statement of a
transaction, the pool's health check when it lends a connection), and it runs in a test
client rather than under gunicorn. ``pg_stat_statements`` would count server-side but needs
``shared_preload_libraries`` (a restart), and PostgreSQL's statement log may not be readable.

:class:`WireCounter` listens on a port of 127.0.0.1 and forwards every connection to the
real server (TCP or Unix socket), parsing the frontend (client to server) messages:

* a simple-protocol ``Query`` message is one statement per ``;``-separated statement in it
  (its text is recorded): ``BEGIN;SELECT set_config(...)``, which the application sends as
  one round trip, is two statements; an empty one is psycopg_pool's health check
  (``conn.execute("")``) and is recorded apart;
* an extended-protocol ``Execute`` is one statement (the text comes from the ``Parse`` its
  portal was bound to), however many ``Parse``/``Bind``/``Sync`` surround it;
* a **round trip** is counted each time the server answers after the client has sent
  something: pipelined statements share one.

``SSLRequest``/``GSSENCRequest`` are answered "no" by the proxy itself (it must read the
messages), so the server sees a plain connection on its side. The proxy adds a hop and its
own CPU: use it to count, never while measuring time.
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from psycopg.conninfo import conninfo_to_dict

_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104
_CANCEL_REQUEST = 80877102
_TEXT_LIMIT = 300  # characters of a statement kept for the report
_RECV_BYTES = 65536

Kind = Literal["statement", "health_check", "round_trip"]


@dataclass(frozen=True)
class WireEvent:
    kind: Kind
    connection: int
    text: str = ""


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("closed during start-up")
        chunks += chunk
    return bytes(chunks)


def _cstring(body: bytes, start: int) -> tuple[str, int]:
    end = body.index(b"\0", start)
    return body[start:end].decode("utf-8", errors="replace"), end + 1


class _FrontendParser:
    """Splits the client's byte stream into messages and reports the ones that execute."""

    def __init__(self, on_event: Callable[[Kind, str], None]) -> None:
        self._buffer = bytearray()
        self._statements: dict[str, str] = {}  # prepared statement name -> SQL
        self._portals: dict[str, str] = {}  # portal name -> prepared statement name
        self._on_event = on_event

    def feed(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= 5:
            kind = chr(self._buffer[0])
            (length,) = struct.unpack_from("!i", self._buffer, 1)
            if len(self._buffer) < 1 + length:
                return
            body = bytes(self._buffer[5 : 1 + length])
            del self._buffer[: 1 + length]
            self._message(kind, body)

    def _message(self, kind: str, body: bytes) -> None:
        if kind == "Q":
            text, _ = _cstring(body, 0)
            statements = split_statements(text)
            for statement in statements:
                self._on_event("statement", statement[:_TEXT_LIMIT])
            if not statements:
                self._on_event("health_check", "")
        elif kind == "P":
            name, offset = _cstring(body, 0)
            text, _ = _cstring(body, offset)
            self._statements[name] = text.strip()
        elif kind == "B":
            portal, offset = _cstring(body, 0)
            statement, _ = _cstring(body, offset)
            self._portals[portal] = statement
        elif kind == "E":
            portal, _ = _cstring(body, 0)
            text = self._statements.get(self._portals.get(portal, ""), "")
            self._on_event("statement" if text else "health_check", text[:_TEXT_LIMIT])


class WireCounter:
    """The proxy; ``url`` is what the application connects to instead of ``upstream_url``."""

    def __init__(self, upstream_url: str) -> None:
        params = conninfo_to_dict(upstream_url)
        self._upstream_host = str(params.get("host") or "127.0.0.1")
        self._upstream_port = int(params.get("port") or 5432)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        user = quote(str(params.get("user") or ""), safe="")
        password = params.get("password")
        credentials = f"{user}:{quote(str(password), safe='')}" if password else user
        database = quote(str(params.get("dbname") or ""), safe="")
        self.url = f"postgres://{credentials}@127.0.0.1:{self.port}/{database}"
        self._lock = threading.Lock()
        self._events: list[WireEvent] = []
        self._last_activity = time.monotonic()
        self._connections = 0
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._accepter = threading.Thread(target=self._accept, name="wire-counter", daemon=True)
        self._accepter.start()

    # --- reading the counts ------------------------------------------------------------------

    def mark(self) -> int:
        with self._lock:
            return len(self._events)

    def since(self, mark: int) -> list[WireEvent]:
        with self._lock:
            return list(self._events[mark:])

    def wait_quiet(self, *, quiet_seconds: float = 0.15, timeout: float = 5.0) -> None:
        """Until nothing has crossed the proxy for ``quiet_seconds``: what a request leaves
        for after its response (returning the connection to the pool) is counted with it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                idle = time.monotonic() - self._last_activity
            if idle >= quiet_seconds:
                return
            time.sleep(quiet_seconds - idle)

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()

    # --- the proxy -----------------------------------------------------------------------------

    def _record(self, connection: int, kind: Kind, text: str = "") -> None:
        with self._lock:
            self._events.append(WireEvent(kind=kind, connection=connection, text=text))

    def _connect_upstream(self) -> socket.socket:
        if self._upstream_host.startswith("/"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(f"{self._upstream_host}/.s.PGSQL.{self._upstream_port}")
            return sock
        return socket.create_connection((self._upstream_host, self._upstream_port))

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._connections += 1
                number = self._connections
            threading.Thread(target=self._serve, args=(client, number), name=f"wire-{number}", daemon=True).start()

    def _serve(self, client: socket.socket, number: int) -> None:
        try:
            upstream = self._connect_upstream()
        except OSError:
            client.close()
            return
        with self._lock:
            self._sockets += [client, upstream]
        client_spoke = threading.Event()
        try:
            if not self._start_up(client, upstream):
                return
            threading.Thread(
                target=self._backend_to_client, args=(upstream, client, number, client_spoke), daemon=True
            ).start()
            parser = _FrontendParser(lambda kind, text: self._record(number, kind, text))
            while data := client.recv(_RECV_BYTES):
                with self._lock:
                    self._last_activity = time.monotonic()
                parser.feed(data)  # recorded before forwarding: the answer cannot come first
                client_spoke.set()
                upstream.sendall(data)
        except (OSError, ValueError, struct.error):
            pass
        finally:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    @staticmethod
    def _start_up(client: socket.socket, upstream: socket.socket) -> bool:
        """Answer encryption requests "no", forward the start-up message; False for a cancel."""
        while True:
            header = _recv_exact(client, 8)
            length, code = (int(value) for value in struct.unpack("!ii", header))
            rest = _recv_exact(client, length - 8)
            if code in (_SSL_REQUEST, _GSSENC_REQUEST):
                client.sendall(b"N")
                continue
            upstream.sendall(header + rest)
            return code != _CANCEL_REQUEST

    def _backend_to_client(
        self, upstream: socket.socket, client: socket.socket, number: int, client_spoke: threading.Event
    ) -> None:
        try:
            while data := upstream.recv(_RECV_BYTES):
                with self._lock:
                    self._last_activity = time.monotonic()
                if client_spoke.is_set():
                    client_spoke.clear()
                    self._record(number, "round_trip")
                client.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def counting_proxy(upstream_url: str) -> Iterator[WireCounter]:
    counter = WireCounter(upstream_url)
    try:
        yield counter
    finally:
        counter.close()


def split_statements(text: str) -> list[str]:
    """The statements of a simple-protocol query, split at the semicolons outside string
    literals, quoted identifiers and comments (psycopg binds parameters client-side, so a
    value's ``;`` arrives inside a literal). Dollar quoting is not parsed: the application
    sends none."""
    statements: list[str] = []
    start, index, length = 0, 0, len(text)
    while index < length:
        char = text[index]
        if char in "'\"":  # a literal or identifier; a doubled quote stays inside it
            index += 1
            while index < length and not (text[index] == char and text[index + 1 : index + 2] != char):
                index += 2 if text[index] == char else 1
        elif text.startswith("--", index):
            index = text.find("\n", index)
            index = length if index < 0 else index
        elif char == ";":
            statements.append(text[start:index].strip())
            start = index + 1
        index += 1
    statements.append(text[start:].strip())
    return [statement for statement in statements if statement]


_SELECT_CALL = re.compile(r"^SELECT\s+(?:\*\s+FROM\s+)?([a-z_][a-z0-9_]*)\s*\(", re.IGNORECASE)


def statement_kind(text: str) -> str:
    """``INSERT``, ``BEGIN``, ...; a ``SELECT`` of (or from) a function call is named by the
    function: ``SELECT set_config()``, ``SELECT o2s_idempotency_claim()``."""
    call = _SELECT_CALL.match(text)
    if call:
        return f"SELECT {call.group(1).lower()}()"
    return (text.split(None, 1) or ["?"])[0].upper()


def summarize_events(events: list[WireEvent]) -> dict[str, Any]:
    """Counts of a stretch of events (e.g. one request's): statements, round trips, pool
    health checks, connections used, statements by kind, and the statements' text."""
    statements = [event.text for event in events if event.kind == "statement"]
    return {
        "statements": len(statements),
        "round_trips": sum(1 for event in events if event.kind == "round_trip"),
        "health_checks": sum(1 for event in events if event.kind == "health_check"),
        "connections": len({event.connection for event in events}),
        "by_kind": dict(Counter(statement_kind(text) for text in statements).most_common()),
        "sql": statements,
    }
