"""O2S invoice endpoints (``/api/v1/invoices/``).

One class per URL; each HTTP method on it is one operation. Views validate shape
(``invoices.api.serializers``), call one service or selector (``invoices.o2s``,
``invoices.services``, ``invoices.selectors``) and serialize.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api.base import O2SAPIView, O2SIdempotentPostView
from billing.api.schema import BODY_ERRORS, COMMON_ERRORS, IDEMPOTENCY_KEY, error_responses
from billing.api.serializers import validated
from invoices.api.serializers import (
    InvoiceCreateRequestSerializer,
    InvoiceListQuerySerializer,
    InvoicePageSerializer,
    InvoicePreviewSerializer,
    InvoiceSerializer,
    InvoiceVoidRequestSerializer,
    preview_document,
)
from invoices.models import Invoice, InvoiceStatus
from invoices.o2s import O2SLine, o2s_invoice_create, o2s_invoice_get, o2s_invoice_preview, o2s_invoices_list
from invoices.services import invoice_void

INVOICES = ["invoices"]


class InvoiceCursorPagination(CursorPagination):
    """Newest first; ``id`` breaks ties between invoices created in the same microsecond,
    so a page boundary never skips or repeats an invoice."""

    ordering = ("-created_at", "-id")
    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100

    def decode_cursor(self, request: Request) -> Cursor | None:
        try:
            return super().decode_cursor(request)
        except NotFound as exc:  # DRF answers a bad cursor with 404; it is bad input
            raise ValidationError({"cursor": ["invalid cursor"]}) from exc


def _line_inputs(lines: list[dict[str, Any]]) -> list[O2SLine]:
    return [O2SLine(**line) for line in lines]


def _invoice_request(request: Request) -> dict[str, Any]:
    """The validated body of a create or preview request, as service keyword arguments."""
    data = validated(InvoiceCreateRequestSerializer, request.data)
    return {
        "customer_id": data.get("customer"),
        "customer_external_id": data.get("customer_external_id"),
        "currency": data["currency"],
        "lines": _line_inputs(data["lines"]),
    }


def _invoice_data(invoice: Invoice, request: Request) -> dict[str, Any]:
    return dict(InvoiceSerializer(invoice, context={"request": request}).data)


_CREATE_DESCRIPTION = """Create **and issue** an invoice. The server computes every amount: unit prices
from the catalogue in the invoice currency, GST per line (10% for Australian customers on
`standard` products, none on `gst_free` products or for customers abroad), totals.

A line is either `{product_code, quantity}` (optionally `description`, `period_start`,
`period_end`) or, for keys granted `can_invoice_custom_lines`, a custom line
`{description, unit_amount_minor, quantity}`; a custom line from any other key is refused
with 403 `custom_lines_not_permitted`, and every accepted one is audited."""


class InvoicesView(O2SIdempotentPostView):
    @extend_schema(
        operation_id="invoices_list",
        tags=INVOICES,
        summary="List invoices, newest first (cursor pagination)",
        parameters=[
            OpenApiParameter("customer", OpenApiTypes.UUID, OpenApiParameter.QUERY),
            OpenApiParameter(
                "customer_external_id", {"type": "string", "minLength": 1, "maxLength": 64}, OpenApiParameter.QUERY
            ),
            OpenApiParameter("status", str, OpenApiParameter.QUERY, enum=InvoiceStatus.values),
            OpenApiParameter(
                "cursor",
                {"type": "string", "maxLength": 1000},
                OpenApiParameter.QUERY,
                description="Opaque; follow the `next` / `previous` links",
            ),
            OpenApiParameter(
                "page_size",
                {"type": "integer", "minimum": 1, "maximum": 100},
                OpenApiParameter.QUERY,
                description="Default 25",
            ),
        ],
        responses={200: InvoicePageSerializer, **error_responses(400, *COMMON_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        """Newest first. Follow `next` until it is null; the cursor is stable while invoices are added."""
        query = validated(InvoiceListQuerySerializer, request.query_params.dict())
        invoices: QuerySet[Invoice] = o2s_invoices_list(
            principal=self.principal,
            customer_id=query.get("customer"),
            customer_external_id=query.get("customer_external_id"),
            status=query.get("status"),
        )
        paginator = InvoiceCursorPagination()
        page = paginator.paginate_queryset(invoices, request, view=self) or []
        results = InvoiceSerializer(page, many=True, context={"request": request}).data  # type: ignore[arg-type] # many=True takes a list
        return Response(
            {"next": paginator.get_next_link(), "previous": paginator.get_previous_link(), "results": results}
        )

    @extend_schema(
        operation_id="invoices_create",
        tags=INVOICES,
        summary="Create and issue an invoice from product codes and quantities",
        description=_CREATE_DESCRIPTION,
        parameters=[IDEMPOTENCY_KEY],
        request=InvoiceCreateRequestSerializer,
        responses={201: InvoiceSerializer, **error_responses(*BODY_ERRORS, 409, 422, *COMMON_ERRORS, 503)},
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().post(request, *args, **kwargs)

    def perform_post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        invoice = o2s_invoice_create(principal=self.principal, **_invoice_request(request))
        return Response(
            _invoice_data(o2s_invoice_get(principal=self.principal, invoice_id=invoice.id), request),
            status=status.HTTP_201_CREATED,
        )


class InvoicePreviewView(O2SIdempotentPostView):
    @extend_schema(
        operation_id="invoices_preview",
        tags=INVOICES,
        summary="Dry run of invoice creation: the same computation and refusals, nothing stored",
        parameters=[IDEMPOTENCY_KEY],
        request=InvoiceCreateRequestSerializer,
        responses={200: InvoicePreviewSerializer, **error_responses(*BODY_ERRORS, 409, 422, *COMMON_ERRORS, 503)},
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The same request body, computation and refusals as `POST /invoices/`; nothing is
        stored, numbered or audited."""
        return super().post(request, *args, **kwargs)

    def perform_post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        preview = o2s_invoice_preview(principal=self.principal, **_invoice_request(request))
        return Response(InvoicePreviewSerializer(preview_document(preview)).data)


class InvoiceView(O2SAPIView):
    @extend_schema(
        operation_id="invoices_retrieve",
        tags=INVOICES,
        summary="Get an invoice",
        responses={200: InvoiceSerializer, **error_responses(404, *COMMON_ERRORS)},
    )
    def get(self, request: Request, invoice_id: uuid.UUID) -> Response:
        """One invoice with its lines, totals, checksum state and pay link."""
        return Response(_invoice_data(o2s_invoice_get(principal=self.principal, invoice_id=invoice_id), request))


class InvoiceVoidView(O2SIdempotentPostView):
    @extend_schema(
        operation_id="invoices_void",
        tags=INVOICES,
        summary="Void an unpaid invoice",
        description="Open (unpaid) invoices only; O2S then also receives an `invoice.voided` callback.",
        parameters=[IDEMPOTENCY_KEY],
        request=InvoiceVoidRequestSerializer,
        responses={200: InvoiceSerializer, **error_responses(*BODY_ERRORS, 404, 409, 422, *COMMON_ERRORS)},
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().post(request, *args, **kwargs)

    def perform_post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(InvoiceVoidRequestSerializer, request.data)
        invoice = invoice_void(principal=self.principal, invoice_id=kwargs["invoice_id"], reason=data.get("reason", ""))
        return Response(_invoice_data(o2s_invoice_get(principal=self.principal, invoice_id=invoice.id), request))
