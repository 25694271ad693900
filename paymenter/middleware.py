"""Request id and acting principal for every request."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from paymenter import request_context, rls
from paymenter.client_ip import client_ip
from paymenter.principals import CustomerPrincipal, Principal, StaffPrincipal

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestContextMiddleware:
    """Binds a request id (a well-formed ``X-Request-ID`` or a new UUID) and client IP.

    The id is echoed in the ``X-Request-ID`` response header and carried by every log
    line and audit event of the request.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        supplied = request.headers.get("X-Request-ID", "")
        request_id = supplied if _REQUEST_ID_RE.match(supplied) else uuid.uuid4().hex
        context = request_context.RequestContext(request_id=request_id, client_ip=client_ip(request) or None)
        request.request_context = context  # type: ignore[attr-defined] # read by the log filter
        with request_context.bound(context):
            response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


def principal_for_user(user: object) -> Principal | None:
    """Staff users act with staff scope; portal users with their customers' scope."""
    from billing.selectors import customer_ids_for_user  # noqa: PLC0415 - app registry

    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return None
    user_id: int = user.pk  # type: ignore[attr-defined]
    if getattr(user, "is_staff", False):
        return StaffPrincipal(user_id=user_id, username=str(getattr(user, "username", "")))
    return CustomerPrincipal(user_id=user_id, customer_ids=customer_ids_for_user(user_id=user_id))


class PrincipalMiddleware:
    """Runs the rest of the request as the logged-in user's principal (RLS + ORM scope).

    Anonymous requests run with no principal: customer data is invisible to them unless a
    view establishes a narrower principal itself (e.g. a verified signed payment link).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        principal = principal_for_user(request.user)
        if principal is None:
            return self.get_response(request)
        with rls.acting_as(principal):
            return self.get_response(request)
