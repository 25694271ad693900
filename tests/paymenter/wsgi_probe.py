"""A WSGI app that answers 204 to everything: gunicorn serves it in
``test_card_number_logs`` so the test sees gunicorn's own access log, not Django's."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("204 No Content", [])
    return [b""]
