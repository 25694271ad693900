"""One error shape for the whole API: ``{"error": {"code", "message", "fields"}}``.

``exception_handler`` is DRF's ``EXCEPTION_HANDLER``. ``code`` is machine-readable and
stable (clients branch on it); ``message`` is for humans; ``fields`` maps an input field
(dotted path for nested input, ``non_field_errors`` for the whole body) to its messages.

=========================================  ======  =========================
exception                                  status  code
=========================================  ======  =========================
``PaymenterError`` (and subclasses)        own     own
DRF ``ValidationError``, Django's          400     ``validation_error``
DRF ``ParseError``                         400     ``malformed_json``
``SuspiciousOperation``                    400     ``bad_request``
``RequestDataTooBig``                      413     ``payload_too_large``
``NotAuthenticated``/``AuthenticationFailed`` 401  ``unauthenticated``
``PermissionDenied`` (DRF or Django)       403     ``permission_denied``
``NotFound``/``Http404``                   404     ``not_found``
``MethodNotAllowed``                       405     ``method_not_allowed``
``NotAcceptable``                          406     ``not_acceptable``
``UnsupportedMediaType``                   415     ``unsupported_media_type``
``Throttled`` (+ ``Retry-After``)          429     ``rate_limited``
any other DRF ``APIException``             own     its ``default_code``
``IntegrityError`` (logged at ERROR)       409     ``conflict``
anything else                              500     ``internal_error`` (``handler500``)
=========================================  ======  =========================

A mapped exception raised with an explicit code keeps it, e.g.
``PermissionDenied(detail, code="ip_not_allowed")`` answers 403 ``ip_not_allowed``.

An ``IntegrityError`` reaching the handler is a bug: a service should have refused with its
own code before a constraint did (an invoice state rule, a duplicate). It is logged at ERROR
with the traceback to be fixed, and the client gets a clear 409 ``conflict`` rather than a
500. The error has already rolled back the transaction it broke (an O2S POST runs in one
transaction, so such a request leaves nothing behind).

``handler400/403/404/500`` (wired in ``paymenter/urls.py``) give the same shape to paths
under ``/api/`` that fail outside a DRF view; other paths keep Django's pages.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.settings import api_settings

from paymenter.encrypted_fields import EncryptedValueUnreadableError
from paymenter.errors import PaymenterError

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"

_CODES: tuple[tuple[type[exceptions.APIException], int, str], ...] = (
    (exceptions.ParseError, 400, "malformed_json"),
    (exceptions.NotAuthenticated, 401, "unauthenticated"),
    (exceptions.AuthenticationFailed, 401, "unauthenticated"),
    (exceptions.PermissionDenied, 403, "permission_denied"),
    (exceptions.NotFound, 404, "not_found"),
    (exceptions.MethodNotAllowed, 405, "method_not_allowed"),
    (exceptions.NotAcceptable, 406, "not_acceptable"),
    (exceptions.UnsupportedMediaType, 415, "unsupported_media_type"),
    (exceptions.Throttled, 429, "rate_limited"),
)


def error_body(code: str, message: str, fields: Mapping[str, list[str]] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": dict(fields or {})}}


def exception_handler(exc: Exception, context: Mapping[str, Any]) -> Response | None:
    """DRF exception handler; ``None`` lets Django answer (a 500 via ``handler500``)."""
    if isinstance(exc, EncryptedValueUnreadableError):
        return None  # answered (409) and audited by audit.middleware.UnreadableValueMiddleware
    if isinstance(exc, PaymenterError):
        if exc.status_code >= 500:
            logger.error("domain error answered with %s: %s", exc.status_code, exc.code, exc_info=exc)
        return Response(exc.as_dict(), status=exc.status_code)
    if isinstance(exc, IntegrityError):
        logger.error("database constraint reached the client as 409 conflict (a bug to fix)", exc_info=exc)
        return Response(
            error_body("conflict", "The request conflicts with the current state of the data."),
            status=409,
        )
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(_django_validation_detail(exc))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        return Response(error_body("payload_too_large", "The request body is too large."), status=413)
    elif isinstance(exc, SuspiciousOperation):
        logger.warning("suspicious request refused: %s", type(exc).__name__)
        return Response(error_body("bad_request", "The request was refused as malformed."), status=400)

    if isinstance(exc, exceptions.ValidationError):
        fields = flatten_error_detail(exc.detail)
        return Response(error_body("validation_error", _validation_message(fields), fields), status=400)
    if not isinstance(exc, exceptions.APIException):
        return None

    status, code = exc.status_code, _default_code(exc)
    for exc_type, mapped_status, mapped_code in _CODES:
        if isinstance(exc, exc_type):
            # an explicit code (``PermissionDenied(..., code="ip_not_allowed")``) is kept
            status, code = mapped_status, _explicit_code(exc) or mapped_code
            break
    response = Response(error_body(code, _text(exc.detail)), status=status)
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        response["WWW-Authenticate"] = auth_header
    wait: float | None = getattr(exc, "wait", None)  # Throttled's seconds (absent from the stubs)
    if isinstance(exc, exceptions.Throttled) and wait is not None:
        response["Retry-After"] = str(max(1, math.ceil(wait)))
    return response


def _default_code(exc: exceptions.APIException) -> str:
    codes = exc.get_codes()
    return codes if isinstance(codes, str) else str(exc.default_code)


def _explicit_code(exc: exceptions.APIException) -> str | None:
    """The code the raiser chose, if it is not the exception class's default."""
    codes = exc.get_codes()
    return codes if isinstance(codes, str) and codes != exc.default_code else None


def _text(detail: Any) -> str:
    if isinstance(detail, Mapping):
        return "; ".join(_text(value) for value in detail.values())
    if isinstance(detail, list | tuple):
        return "; ".join(_text(value) for value in detail)
    return str(detail)


def flatten_error_detail(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as ``{"a.b.0.c": [messages]}``: ``{"lines": {"0":
    {"quantity": [...]}}}`` -> ``{"lines.0.quantity": [...]}``. A nested serializer's or
    list's own errors (``non_field_errors``) are filed under its name. The one flattening
    of the ``fields`` of every error body."""
    if isinstance(detail, Mapping):
        fields: dict[str, list[str]] = {}
        for name, value in detail.items():
            if prefix and name == api_settings.NON_FIELD_ERRORS_KEY:
                key = prefix
            else:
                key = f"{prefix}.{name}" if prefix else str(name)
            for field, problems in flatten_error_detail(value, key).items():
                fields.setdefault(field, []).extend(problems)
        return fields
    if isinstance(detail, list | tuple):
        fields = {}
        for index, item in enumerate(detail):
            if isinstance(item, Mapping | list | tuple):
                fields.update(flatten_error_detail(item, f"{prefix}.{index}" if prefix else str(index)))
            else:
                fields.setdefault(prefix or api_settings.NON_FIELD_ERRORS_KEY, []).append(str(item))
        return fields
    return {prefix or api_settings.NON_FIELD_ERRORS_KEY: [str(detail)]}


def _validation_message(fields: Mapping[str, list[str]]) -> str:
    non_field = api_settings.NON_FIELD_ERRORS_KEY
    if set(fields) == {non_field}:
        return " ".join(fields[non_field])
    names = ", ".join(name for name in fields if name != non_field)
    return f"Invalid input: {names}." if names else "Invalid input."


def _django_validation_detail(exc: DjangoValidationError) -> Any:
    if hasattr(exc, "error_dict"):
        return {
            (api_settings.NON_FIELD_ERRORS_KEY if name == "__all__" else name): messages
            for name, messages in exc.message_dict.items()
        }
    return exc.messages


# --- Django-level handlers (paymenter/urls.py) ---------------------------------------------


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body("bad_request", "The request was refused as malformed."), status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body("permission_denied", "You do not have permission for this."), status=403)
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """No detail leaves the process; the X-Request-ID header ties the reply to the log."""
    if _is_api(request):
        return JsonResponse(error_body("internal_error", "An internal error occurred."), status=500)
    return defaults.server_error(request)
