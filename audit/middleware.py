"""Unreadable encrypted values: a clear 409 for the client and an audit event that
survives the refusal (paymenter.encrypted_fields.EncryptedValueUnreadableError).

The error is raised while a request reads a record, often inside a transaction that then
rolls back; so the event is written here, after the view (and its transactions) ended, in
a transaction of its own. The API's exception handler leaves this one error to this
middleware, so API and pages are answered the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import DatabaseError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.html import escape

from audit.actions import AuditAction
from audit.services import audit_record
from paymenter import rls
from paymenter.api_errors import API_PREFIX
from paymenter.encrypted_fields import EncryptedValueUnreadableError
from paymenter.principals import SystemPrincipal

logger = logging.getLogger(__name__)

DETECTOR = SystemPrincipal(label="detector:encryption")


class UnreadableValueMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, EncryptedValueUnreadableError):
            return None
        _audit(exception, path=request.path)
        if request.path.startswith(API_PREFIX):
            return JsonResponse(exception.as_dict(), status=exception.status_code)
        return HttpResponse(
            f"<!doctype html><title>Record unavailable</title><h1>Record unavailable</h1>"
            f"<p>{escape(exception.message)}</p>",
            status=exception.status_code,
        )


def _audit(exception: EncryptedValueUnreadableError, *, path: str) -> None:
    """One event per detection, naming the value's place and who came across it."""
    seen_by = exception.principal
    table_column, _, pk = exception.place.partition(":")
    try:
        with rls.acting_as(DETECTOR), transaction.atomic():
            audit_record(
                action=AuditAction.ENCRYPTED_VALUE_UNREADABLE,
                principal=DETECTOR,
                object_type=table_column,
                object_id=pk,
                payload={
                    "place": exception.place,
                    "seen_by": f"{seen_by.actor_type}:{seen_by.actor_id}" if seen_by else "anonymous",
                    "path": path[:200],
                },
            )
    except DatabaseError:
        logger.exception("unreadable value at %s not audited", exception.place)
