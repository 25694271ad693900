"""The base of every O2S REST API view (``/api/v1/``).

* authentication: ``Authorization: Bearer <key>`` + the key's IP allowlist
  (``o2s.api.authentication.ApiKeyAuthentication``); ``request.auth`` is the
  :class:`~paymenter.principals.ApiKeyPrincipal`;
* per-key rate limit in Redis (``o2s.api.throttling.ApiKeyRateThrottle``);
* the handler runs as that principal (RLS scope + audit actor);
* every POST goes through ``o2s.idempotency.run_idempotently``: views that
  accept POST derive from :class:`O2SIdempotentPostView` and implement
  ``perform_post`` instead of ``post``.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from o2s import idempotency
from o2s.api.authentication import ApiKeyAuthentication, IsApiClient
from o2s.api.throttling import ApiKeyRateThrottle
from paymenter import rls
from paymenter.principals import ApiKeyPrincipal


class O2SAPIView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsApiClient]
    throttle_classes = [ApiKeyRateThrottle]
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]

    @property
    def principal(self) -> ApiKeyPrincipal:
        auth = self.request.auth
        if not isinstance(auth, ApiKeyPrincipal):  # IsApiClient guarantees it
            raise TypeError("O2S views need an API key principal")
        return auth

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # authenticate, permit, throttle
        self._principal_scope = ExitStack()
        self._principal_scope.enter_context(rls.acting_as(self.principal))

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        scope: ExitStack | None = getattr(self, "_principal_scope", None)
        if scope is not None:
            scope.close()
        return super().finalize_response(request, response, *args, **kwargs)


class O2SIdempotentPostView(O2SAPIView):
    """An O2S view that accepts POST, with ``Idempotency-Key`` semantics."""

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return idempotency.run_idempotently(
            request=request,
            api_key_id=self.principal.api_key_id,
            handler=lambda: self.perform_post(request, *args, **kwargs),
        )

    def perform_post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raise NotImplementedError
