"""The short way through Django for the gateways' webhooks.

A webhook delivery is a machine POSTing JSON, authenticated by its signature alone: it has
no session, no user, no CSRF token, no messages and gets no page. :class:`WebhookMiddleware`
sits in ``MIDDLEWARE`` after the middleware every answer needs - the request id and the RLS
request scope (``RequestContextMiddleware``), the unreadable-value handler, HTTPS redirect,
HSTS, ``nosniff``, referrer and opener policies (``SecurityMiddleware``), the static files and
the Content-Security-Policy header - and before the browser middleware. A request that
resolves to a view of this app goes straight to it; everything else goes on down the stack.

Skipped for a webhook, and why nothing is lost: sessions (never read: a session cookie sent
along must not make the delivery act as that user, and now cannot), ``CommonMiddleware`` (its
slash redirect only concerns paths that do not resolve, which take the full path; the
``Content-Length`` it adds is added here), CSRF (the views are exempt: the signature is the
authentication), authentication, allauth, the staff-session and principal middleware (a
webhook acts as the ingest principal, never as a browser's user), messages, and
``XFrameOptionsMiddleware``, whose ``X-Frame-Options`` header is added here. Measured: 265 of
the 2,266 Python calls of a delivery through the test client, ~0.1-0.2 ms of CPU
(docs/performance.md, "Webhook ingest"). The refusal gate in front of Django
(``paymenter.refusal_gate``) is unaffected: it runs before any of this.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

NAMESPACE = "webhooks"
# Where config/urls.py mounts this app. Were it mounted elsewhere, its requests would take the
# full stack: slower, nothing else.
PATH_PREFIX = "/webhooks/"


class WebhookMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith(PATH_PREFIX):
            return self.get_response(request)
        try:
            match = resolve(request.path_info, getattr(request, "urlconf", None))
        except Resolver404:
            return self.get_response(request)  # the full stack's 404 (or slash redirect)
        if match.namespace != NAMESPACE:
            return self.get_response(request)
        request.resolver_match = match
        response: HttpResponse = match.func(request, *match.args, **match.kwargs)
        # what XFrameOptionsMiddleware and CommonMiddleware add to every answer
        if "X-Frame-Options" not in response:
            response["X-Frame-Options"] = settings.X_FRAME_OPTIONS
        if not response.streaming and "Content-Length" not in response:
            response["Content-Length"] = str(len(response.content))
        return response
