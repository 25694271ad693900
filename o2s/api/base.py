"""The base of every O2S REST API view (``/api/v1/``).

* authentication: ``Authorization: Bearer <key>`` + the key's IP allowlist
  (``o2s.api.authentication.ApiKeyAuthentication``); ``request.auth`` is the
  :class:`~paymenter.principals.ApiKeyPrincipal`;
* per-key rate limit in Redis (``o2s.api.throttling.ApiKeyRateThrottle``);
* the handler runs as that principal (RLS scope + audit actor), for exactly the lifetime
  of the request (``rls.request_scope`` around ``dispatch``);
* every POST goes through ``o2s.idempotency.run_idempotently``: views that
  accept POST derive from :class:`O2SIdempotentPostView` and implement
  ``perform_post`` instead of ``post``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.db import transaction
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from o2s import idempotency
from o2s.api.authentication import ApiKeyAuthentication, IsApiClient
from o2s.api.throttling import ApiKeyRateThrottle
from paymenter import rls
from paymenter.json_parser import StrictJSONParser
from paymenter.middleware import machine_endpoint
from paymenter.principals import ApiKeyPrincipal


def read_in_one_transaction(handler: Callable[..., Response]) -> Callable[..., Response]:
    """Run a GET handler that makes several queries in one transaction.

    Outside a transaction every query carries the RLS scope in a transaction of its own
    (``paymenter.postgres_rls``: BEGIN, ``set_config``, the query, COMMIT); inside one the
    scope is set once. A page of invoices with their lines then costs BEGIN, the scope, two
    SELECTs and COMMIT, whatever the page size.
    """

    @functools.wraps(handler)
    def wrapper(view: APIView, request: Request, *args: Any, **kwargs: Any) -> Response:
        with transaction.atomic():
            return handler(view, request, *args, **kwargs)

    return wrapper


@machine_endpoint  # key-authenticated JSON: no session, CSRF or browser middleware
class O2SAPIView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsApiClient]
    throttle_classes = [ApiKeyRateThrottle]
    parser_classes = [StrictJSONParser]
    renderer_classes = [JSONRenderer]

    @property
    def principal(self) -> ApiKeyPrincipal:
        auth = self.request.auth
        if not isinstance(auth, ApiKeyPrincipal):  # IsApiClient guarantees it
            raise TypeError("O2S views need an API key principal")
        return auth

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        # The API key's principal lives exactly as long as this request, however it ends:
        # an exception DRF does not map (a DatabaseError, a bug) re-raises out of
        # ``dispatch`` and leaves the scope through the same ``finally``.
        with rls.request_scope():
            return super().dispatch(request, *args, **kwargs)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # authenticate, permit, throttle
        rls.request_principal_set(self.principal)


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
