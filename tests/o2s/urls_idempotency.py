"""A test-only O2S-style POST endpoint around ``run_idempotently``, without API-key auth.

The API key is named by the ``X-Test-Api-Key`` header. The handler creates a customer
through the real service (customer row + audit event). ``mode`` in the body selects extra
behaviour: ``gate`` blocks inside the handler until the test releases it, ``audited_refusal``
records an audit event and refuses (as ``invoice_require_intact`` does on a checksum
mismatch), ``crash`` writes and then fails with an unexpected exception.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.urls import path
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.actions import AuditAction
from audit.services import audit_record
from audit.unit_of_work import unit_of_work
from billing.services import customer_create
from o2s.idempotency import run_idempotently
from paymenter import rls
from paymenter.errors import PaymenterError
from paymenter.principals import ApiKeyPrincipal, SystemPrincipal

PRINCIPAL = SystemPrincipal(label="test:idempotency")


@dataclass
class Gate:
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


GATES: dict[str, Gate] = {}  # by external_id; the test creates and releases them


class RefusedError(PaymenterError):
    status_code = 409

    def __init__(self) -> None:
        super().__init__(code="test_refused", message="Refused after auditing the refusal.")


def _create_customer(data: dict[str, Any]) -> Response:
    external_id = str(data.get("external_id", ""))
    mode = data.get("mode")
    if mode == "audited_refusal":
        with unit_of_work(PRINCIPAL):
            audit_record(
                action=AuditAction.INVOICE_CHECKSUM_MISMATCH,
                principal=PRINCIPAL,
                object_type="idempotency-test",
                object_id=external_id,
                payload={"attempted": "test"},
            )
        raise RefusedError()
    customer = customer_create(
        principal=PRINCIPAL,
        external_id=external_id,
        billing_country=str(data.get("billing_country", "AU")),
        name=str(data.get("name", "")),
        email=str(data.get("email", "")),
    )
    if mode == "gate":
        gate = GATES[external_id]
        gate.entered.set()
        if not gate.release.wait(timeout=30):
            raise TimeoutError("the test never released the gate")
    if mode == "crash":
        raise RuntimeError("unexpected failure after the write")
    body = {
        "id": customer.id,  # a UUID and a datetime: stored as DRF encoded them
        "external_id": customer.external_id,
        "name": customer.name,
        "created": customer.created_at,
    }
    return Response(body, status=201)


class IdempotentCustomerView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]

    def post(self, request: Request) -> Response:
        data = request.data if isinstance(request.data, dict) else {}
        api_key_id = uuid.UUID(request.headers["X-Test-Api-Key"])
        # as O2S's views do: the key's principal, whose records row-level security shows
        with rls.acting_as(ApiKeyPrincipal(api_key_id=api_key_id, name="test")):
            return run_idempotently(request=request, api_key_id=api_key_id, handler=lambda: _create_customer(data))


urlpatterns = [path("o2s-test/customers/", IdempotentCustomerView.as_view())]
