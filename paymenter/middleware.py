"""Request id and client address for every request (the acting principal is set by the
channel that knows who is acting: ``portal.middleware``, ``o2s.api.base``), and the short
way through Django for machine endpoints (:class:`MachineEndpointMiddleware`)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from django.utils.module_loading import import_string

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


_View = TypeVar("_View")

MACHINE_ENDPOINT = "machine_endpoint"


def machine_endpoint(view: _View) -> _View:
    """Mark a view (function or class) as a machine endpoint: JSON for a machine,
    authenticated by a signature or an API key, never by a browser session
    (:class:`MachineEndpointMiddleware`)."""
    setattr(view, MACHINE_ENDPOINT, True)
    return view


def _is_machine_endpoint(func: Any) -> bool:
    return bool(
        getattr(func, MACHINE_ENDPOINT, False) or getattr(getattr(func, "view_class", None), MACHINE_ENDPOINT, False)
    )


class MachineEndpointMiddleware:
    """The short way through Django for machine endpoints: the gateways' webhooks and the
    O2S API (views marked with :func:`machine_endpoint`).

    It sits in ``MIDDLEWARE`` after the middleware every answer needs - the request id and
    the RLS request scope (:class:`RequestContextMiddleware`), the unreadable-value handler,
    HTTPS redirect, HSTS, ``nosniff``, referrer and opener policies (``SecurityMiddleware``),
    the static files and the Content-Security-Policy header - and before the browser
    middleware. A request under ``MACHINE_ENDPOINT_PATHS`` that resolves to a marked view goes
    straight to it; everything else (the API's schema and staff docs pages included) goes on
    down the stack.

    Skipped for a machine endpoint, and why nothing is lost: sessions (never read: a session
    cookie sent along must not make a webhook delivery or an O2S call act as that user, and
    now cannot), ``CommonMiddleware`` (its slash redirect only concerns paths that do not
    resolve, which take the full path; the ``Content-Length`` it adds is added here), CSRF
    (the views are exempt: the signature or the API key is the authentication),
    authentication, allauth, the staff-session and principal middleware (the view sets its
    own principal), messages, and ``XFrameOptionsMiddleware``, whose ``X-Frame-Options``
    header is added here. The refusal gate in front of Django (``paymenter.refusal_gate``)
    runs before any of this (docs/performance.md).

    A view's exception still reaches every ``process_exception`` hook of ``MIDDLEWARE``, in
    Django's order (the O2S API's 409 for an unreadable encrypted value is one:
    ``audit.middleware.UnreadableValueMiddleware``); what no hook answers propagates as it
    would from Django's handler.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.prefixes = tuple(settings.MACHINE_ENDPOINT_PATHS)
        # the process_exception hooks Django's handler would run, last middleware first
        hooks = []
        for path in reversed(settings.MIDDLEWARE):
            middleware = import_string(path)
            if isinstance(middleware, type) and hasattr(middleware, "process_exception"):
                hooks.append(middleware(get_response).process_exception)
        self.exception_hooks: list[Callable[[HttpRequest, Exception], HttpResponse | None]] = hooks

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith(self.prefixes):
            return self.get_response(request)
        try:
            match = resolve(request.path_info, getattr(request, "urlconf", None))
        except Resolver404:
            return self.get_response(request)  # the full stack's 404 (or slash redirect)
        if not _is_machine_endpoint(match.func):
            return self.get_response(request)
        request.resolver_match = match
        try:
            response: HttpResponse = match.func(request, *match.args, **match.kwargs)
        except Exception as exc:
            answered = next((r for hook in self.exception_hooks if (r := hook(request, exc)) is not None), None)
            if answered is None:
                raise
            response = answered
        if hasattr(response, "render") and callable(response.render):
            response = response.render()  # a DRF Response, as Django's handler would render it
        # what XFrameOptionsMiddleware and CommonMiddleware add to every answer
        if "X-Frame-Options" not in response:
            response["X-Frame-Options"] = settings.X_FRAME_OPTIONS
        if not response.streaming and "Content-Length" not in response:
            response["Content-Length"] = str(len(response.content))
        return response
