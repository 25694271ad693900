"""Authentication of O2S API requests: ``Authorization: Bearer <key>`` + the key's IP allowlist.

=======================================  ======  ==================  ===================
request                                  status  error code          audited reason
=======================================  ======  ==================  ===================
no ``Authorization`` header              401     ``unauthenticated``  ``missing``
not ``Bearer pmk_<12 hex>_<52 base32>``  401     ``unauthenticated``  ``malformed``
no such key / wrong secret               401     ``unauthenticated``  ``unknown``
revoked key                              401     ``unauthenticated``  ``revoked``
expired key                              401     ``unauthenticated``  ``expired``
valid key, address not in its networks   403     ``ip_not_allowed``   ``ip_not_allowed``
valid key, no trustworthy address        403     ``ip_not_allowed``   ``client_ip_unknown``
=======================================  ======  ==================  ===================

Every 401 has the same message, so a caller cannot tell which check failed; the reason
goes to the ``api.auth_refused`` audit event (committed on its own, since the request
fails) together with the client address and, if the key parsed, its public lookup id.
The key itself is never logged or audited.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.db import DatabaseError, transaction
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from audit.actions import AuditAction
from audit.services import audit_record
from o2s.errors import ApiKeyRefusalReason, ApiKeyRefusedError
from o2s.selectors import api_key_authenticate, api_key_check_network
from o2s.services import api_key_touch
from paymenter.client_ip import client_ip
from paymenter.principals import ApiKeyPrincipal

logger = logging.getLogger(__name__)

AUTH_SCHEME = "Bearer"
REALM = "paymenter"
UNAUTHENTICATED_MESSAGE = "Invalid or missing API key."
IP_NOT_ALLOWED_CODE = "ip_not_allowed"
IP_NOT_ALLOWED_MESSAGE = "This API key may not be used from this address."
REASON_IP_NOT_ALLOWED = "ip_not_allowed"
REASON_CLIENT_IP_UNKNOWN = "client_ip_unknown"
_PATH_MAX = 200


class ApiClientUser:
    """``request.user`` of an API request: DRF needs one; it is not a Django user."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None

    def __init__(self, api_key_id: uuid.UUID) -> None:
        self.api_key_id = api_key_id

    def __str__(self) -> str:
        return f"api-key:{self.api_key_id}"


def _audit_refusal(request: Request, *, reason: str, ip: str, lookup_id: str = "") -> None:
    """Commit one ``api.auth_refused`` event. A failing audit write must not turn the
    refusal into a 500, so it is logged and the refusal stands."""
    payload: dict[str, Any] = {
        "reason": reason,
        "client_ip": ip,
        "key_lookup_id": lookup_id,
        "path": request.path[:_PATH_MAX],
        "method": request.method,
    }
    logger.warning(
        "API request refused: %s (client %s, key lookup id %s, %s %s)",
        reason,
        ip or "unknown",
        lookup_id or "-",
        request.method,
        payload["path"],
    )
    try:
        with transaction.atomic():
            audit_record(action=AuditAction.API_AUTH_REFUSED, object_type="api_key", object_id="", payload=payload)
    except DatabaseError:
        logger.exception("could not audit a refused API request (%s)", reason)


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ApiClientUser, ApiKeyPrincipal] | None:
        ip = client_ip(request._request)
        header = get_authorization_header(request)
        if not header:
            _audit_refusal(request, reason=ApiKeyRefusalReason.MISSING, ip=ip)
            raise exceptions.NotAuthenticated(UNAUTHENTICATED_MESSAGE)
        raw = self._bearer_token(header)
        if raw is None:
            _audit_refusal(request, reason=ApiKeyRefusalReason.MALFORMED, ip=ip)
            raise exceptions.AuthenticationFailed(UNAUTHENTICATED_MESSAGE)
        try:
            api_key = api_key_authenticate(raw)
        except ApiKeyRefusedError as exc:
            _audit_refusal(request, reason=exc.reason, ip=ip, lookup_id=exc.lookup_id)
            raise exceptions.AuthenticationFailed(UNAUTHENTICATED_MESSAGE) from None
        if not api_key_check_network(api_key, ip):
            reason = REASON_IP_NOT_ALLOWED if ip else REASON_CLIENT_IP_UNKNOWN
            _audit_refusal(request, reason=reason, ip=ip, lookup_id=api_key.lookup_id)
            raise exceptions.PermissionDenied(IP_NOT_ALLOWED_MESSAGE, code=IP_NOT_ALLOWED_CODE)
        api_key_touch(api_key)
        logger.debug("API request authenticated with key lookup id %s", api_key.lookup_id)
        principal = ApiKeyPrincipal(
            api_key_id=api_key.pk,
            name=api_key.name,
            can_invoice_custom_lines=api_key.can_invoice_custom_lines,
            rate_limit_per_minute=api_key.rate_limit_per_minute,
        )
        return ApiClientUser(api_key.pk), principal

    def authenticate_header(self, request: Request) -> str:
        return f'{AUTH_SCHEME} realm="{REALM}"'

    @staticmethod
    def _bearer_token(header: bytes) -> str | None:
        """The token of ``Bearer <token>`` (scheme case-insensitive); None for anything else."""
        try:
            parts = header.decode("ascii").split()
        except UnicodeDecodeError:
            return None
        if len(parts) != 2 or parts[0].lower() != AUTH_SCHEME.lower():
            return None
        return parts[1]


class IsApiClient(BasePermission):
    """The request was authenticated by :class:`ApiKeyAuthentication`."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        return isinstance(request.auth, ApiKeyPrincipal)
