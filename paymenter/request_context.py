"""Per-request facts (request id, client address) that logs and audit records carry."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestContext:
    request_id: str
    client_ip: str | None = None


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "paymenter_request_context", default=None
)


def current() -> RequestContext | None:
    return _current.get()


@contextmanager
def bound(context: RequestContext) -> Iterator[RequestContext]:
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)
