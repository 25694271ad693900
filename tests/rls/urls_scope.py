"""Test-only endpoints for the request-scope tests: O2S views that fail in ways DRF does
not map, and a page that reports the scope a fresh transaction on its thread gets."""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError, connection, transaction
from django.http import HttpRequest, JsonResponse
from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response

from o2s.api.base import O2SAPIView
from paymenter import api_errors, rls


class CrashingView(O2SAPIView):
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raise RuntimeError("a bug in a view")


class DatabaseErrorView(O2SAPIView):
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raise DatabaseError("the database went away")


def scope_report(request: HttpRequest) -> JsonResponse:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('paymenter.scope', true)")
        (database_scope,) = cursor.fetchone() or ("",)
    principal = rls.current_principal()
    return JsonResponse({"principal": repr(principal) if principal else None, "database_scope": database_scope or ""})


urlpatterns = [
    path("api/v1/crash/", CrashingView.as_view()),
    path("api/v1/database-error/", DatabaseErrorView.as_view()),
    path("scope/", scope_report),
]

handler500 = api_errors.server_error
