"""Request id and client address for every request (the acting principal is set by the
channel that knows who is acting: ``portal.middleware``, ``o2s.api.base``)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from paymenter import request_context, rls
from paymenter.client_ip import client_ip
from paymenter.redaction import contains_card_number

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestContextMiddleware:
    """Binds a request id (a well-formed ``X-Request-ID`` that holds no card number, or a
    new UUID) and client IP.

    The id is echoed in the ``X-Request-ID`` response header and carried by every log
    line and audit event of the request.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        supplied = request.headers.get("X-Request-ID", "")
        # the id is echoed, logged and audited: one holding a card number is never used
        usable = _REQUEST_ID_RE.match(supplied) and not contains_card_number(supplied)
        request_id = supplied if usable else uuid.uuid4().hex
        context = request_context.RequestContext(request_id=request_id, client_ip=client_ip(request) or None)
        request.request_context = context  # type: ignore[attr-defined] # read by the log filter
        # every request starts with no acting principal, whatever the thread ran before
        with request_context.bound(context), rls.request_scope():
            response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response
