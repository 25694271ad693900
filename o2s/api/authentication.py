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

Every 401 has the same message, so a caller cannot tell which check failed. A refusal
costs no database write: it is counted per client address and window in Redis and audited
as one aggregated ``requests.refused`` event per address and window (count, first/last
time, reasons, public key lookup ids; ``audit/refusals.py``). An address past
``REFUSAL_LIMIT_PER_WINDOW`` refusals is answered 429 ``rate_limited`` (``Retry-After``:
the rest of the window), and its well-formed keys are not even looked up in the database
unless they authenticated lately (O2S may share an address with a flood): that gate is
``paymenter.refusal_gate``, in front of Django. The key itself is never logged or audited.
"""

from __future__ import annotations

import logging
import uuid

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from o2s.errors import ApiKeyRefusalReason, ApiKeyRefusedError
from o2s.selectors import api_key_authenticate, api_key_check_network
from o2s.services import api_key_touch
from paymenter.client_ip import client_ip
from paymenter.metrics import Metric, metric_increment
from paymenter.principals import ApiKeyPrincipal
from paymenter.refusals import RefusalKind, refusal_record

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


def _refuse(request: Request, *, reason: str, ip: str, lookup_id: str = "") -> None:
    """Count the refusal for the aggregated audit event of its source and window (Redis
    only: no database work); past the source's limit, answer 429 instead."""
    logger.warning(
        "API request refused: %s (client %s, key lookup id %s, %s %s)",
        reason,
        ip or "unknown",
        lookup_id or "-",
        request.method,
        request.path[:_PATH_MAX],
    )
    standing = refusal_record(kind=RefusalKind.API, source=ip, reason=reason, detail=lookup_id)
    if standing is not None and standing.over_limit:
        metric_increment(Metric.REFUSALS_RATE_LIMITED)
        raise exceptions.Throttled(wait=standing.retry_after)


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ApiClientUser, ApiKeyPrincipal] | None:
        ip = client_ip(request._request)
        header = get_authorization_header(request)
        if not header:
            _refuse(request, reason=ApiKeyRefusalReason.MISSING, ip=ip)
            raise exceptions.NotAuthenticated(UNAUTHENTICATED_MESSAGE)
        raw = self._bearer_token(header)
        if raw is None:
            _refuse(request, reason=ApiKeyRefusalReason.MALFORMED, ip=ip)
            raise exceptions.AuthenticationFailed(UNAUTHENTICATED_MESSAGE)
        try:
            api_key = api_key_authenticate(raw)
        except ApiKeyRefusedError as exc:
            _refuse(request, reason=exc.reason, ip=ip, lookup_id=exc.lookup_id)
            raise exceptions.AuthenticationFailed(UNAUTHENTICATED_MESSAGE) from None
        if not api_key_check_network(api_key, ip):
            reason = REASON_IP_NOT_ALLOWED if ip else REASON_CLIENT_IP_UNKNOWN
            _refuse(request, reason=reason, ip=ip, lookup_id=api_key.lookup_id)
            raise exceptions.PermissionDenied(IP_NOT_ALLOWED_MESSAGE, code=IP_NOT_ALLOWED_CODE)
        # vouched for (it then passes the refusal gate from a flooded address) by the rate
        # limit, in the same Redis round trip (o2s/api/throttling.py)
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
