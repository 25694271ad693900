"""gunicorn's own log lines through the same redaction as the application's.

gunicorn writes its access log (``gunicorn.access``: the request line with its query string,
the referer, the user agent) and its error log (``gunicorn.error``: e.g. an invalid request
line, quoted) with handlers of its own, outside ``settings.LOGGING``. A client that puts a
card number in a URL (``?card=4242+4242+4242+4242``) would have it written in clear. This
logger class adds ``paymenter.logs.RedactionFilter`` to both loggers, so such a line reads
``?card=[REDACTED:PAN]``.

Used by the image's command (``Dockerfile``: ``--logger-class
paymenter.gunicorn_logging.RedactingGunicornLogger``); every gunicorn that serves this app
must be started with it (docs/security.md).
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from paymenter.logs import RedactionFilter


class RedactingGunicornLogger(Logger):  # type: ignore[misc] # gunicorn ships no types
    """gunicorn's ``Logger`` with ``RedactionFilter`` on its access and error loggers."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)  # also runs again on a configuration reload: add the filter once
        for log in (self.access_log, self.error_log):
            if not any(isinstance(existing, RedactionFilter) for existing in log.filters):
                log.addFilter(RedactionFilter())
