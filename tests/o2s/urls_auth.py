"""Test-only O2S endpoints for API-key authentication (``tests/o2s/test_api_auth.py``)."""

from __future__ import annotations

from typing import Any

from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response

from o2s.api.base import O2SAPIView, O2SIdempotentPostView
from paymenter import rls


class WhoAmIView(O2SAPIView):
    def get(self, request: Request) -> Response:
        acting = rls.current_principal()
        return Response(
            {
                "api_key_id": str(self.principal.api_key_id),
                "name": self.principal.name,
                "acting_as": acting.actor_id if acting is not None else None,
            }
        )


class EchoView(O2SIdempotentPostView):
    def perform_post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response({"api_key_id": str(self.principal.api_key_id)}, status=201)


urlpatterns = [
    path("api/v1/whoami/", WhoAmIView.as_view()),
    path("api/v1/echo/", EchoView.as_view()),
]
