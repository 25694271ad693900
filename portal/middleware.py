"""The acting principal of a browser request (admin and customer pages)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from billing.selectors import principal_for_user
from paymenter import rls


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
