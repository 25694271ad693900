"""JSON log lines that carry the request id and never carry a card number or a secret.

Wired up in ``settings.LOGGING``: the console handler runs ``RequestContextFilter`` then
``RedactionFilter`` and formats with ``JsonFormatter``. Redaction happens in a filter, not
in the formatter, because the filter rewrites the record itself (message, ``extra`` fields,
exception text), so every handler that sees the record afterwards sees the redacted copy.
See docs/operations.md.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest

from paymenter import request_context
from paymenter.redaction import REDACTED, is_secret_key, redact, redact_text

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "request_id",
    "client_ip",
}
_REDACTED_MARK = "_paymenter_redacted"
REQUEST_ATTRIBUTE = "request_context"  # where RequestContextMiddleware leaves the context
_exception_formatter = logging.Formatter()


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra=`` fields of ``record`` (private ``_``-prefixed attributes excluded)."""
    return {
        key: value for key, value in record.__dict__.items() if key not in _STANDARD_ATTRS and not key.startswith("_")
    }


class RequestContextFilter(logging.Filter):
    """Stamps ``request_id`` and ``client_ip`` of the current request (or None) on a record.

    Django logs 4xx responses (``django.request``) after the middleware chain returned,
    when the context variable is already reset; for those records the context is taken
    from the ``request`` they carry (``request.request_context``, set by
    ``RequestContextMiddleware``), falling back to its ``REMOTE_ADDR``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        context = request_context.current() or _context_of(getattr(record, "request", None))
        if getattr(record, "request_id", None) is None:
            record.request_id = (context.request_id or None) if context else None
        if getattr(record, "client_ip", None) is None:
            record.client_ip = context.client_ip if context else None
        return True


def _context_of(request: object) -> request_context.RequestContext | None:
    if not isinstance(request, HttpRequest):
        return None
    context = getattr(request, REQUEST_ATTRIBUTE, None)
    if isinstance(context, request_context.RequestContext):
        return context
    return request_context.RequestContext(request_id="", client_ip=request.META.get("REMOTE_ADDR"))


class RedactionFilter(logging.Filter):
    """Masks card numbers (Luhn-valid 13-19 digits) and secrets in a record, in place.

    The message is rendered first (``msg % args``) and then redacted, so a PAN passed as a
    ``%s`` argument is caught too; afterwards ``args`` is empty. ``extra`` fields under a
    secret-looking name become ``[REDACTED]``; other JSON-like values are redacted
    recursively. Exception and stack text is rendered and redacted as well. A filter must
    never raise (it runs outside the handler's error handling), so it does not.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _REDACTED_MARK, False):
            return True
        record.msg = redact_text(_render_message(record))
        record.args = ()
        for key, value in extra_fields(record).items():
            setattr(record, key, _redact_extra(key, value))
        if record.exc_info and not record.exc_text:
            record.exc_text = _exception_formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        setattr(record, _REDACTED_MARK, True)
        return True


def _render_message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # noqa: BLE001 - bad %-args must not turn a log call into a crash
        return f"{record.msg!s} {record.args!r}"


def _redact_extra(key: str, value: Any) -> Any:
    if is_secret_key(key) and value not in (None, ""):
        return REDACTED
    if value is None or isinstance(value, str | int | float | bool | Mapping | list | tuple):
        return redact(value)
    return value  # an object (e.g. Django's ``request``): rendered and redacted by JsonFormatter


class JsonFormatter(logging.Formatter):
    """One JSON object per line.

    Keys: ``time`` (UTC, ISO 8601, milliseconds), ``level``, ``logger``, ``message``,
    ``request_id``, ``client_ip``, ``exception`` (traceback text, when there is one),
    ``stack`` (when ``stack_info``), then every ``extra`` field. Values JSON cannot hold are
    rendered with ``str()`` and redacted; Django's ``request`` object is left out (the
    request id identifies the request).
    """

    def format(self, record: logging.LogRecord) -> str:
        context = request_context.current()
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or (context.request_id if context else None),
            "client_ip": getattr(record, "client_ip", None) or (context.client_ip if context else None),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text(self.formatException(record.exc_info))
        if record.exc_text:
            payload["exception"] = record.exc_text
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        for key, value in extra_fields(record).items():
            if isinstance(value, HttpRequest) or key in payload:
                continue
            payload[key] = value
        return json.dumps(payload, default=_json_default, ensure_ascii=False)


def _json_default(value: object) -> str:
    return redact_text(str(value))
