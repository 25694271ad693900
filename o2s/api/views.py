"""O2S endpoints: customers, the product catalogue and invoices (``/api/v1/``).

One class per URL; each HTTP method on it is one operation with its own request and
response serializers. Views validate shape, call one selector or service, serialize.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from billing.selectors import customer_get, customer_get_by_external_id, product_get, products_active
from billing.services import customer_create, customer_update
from invoices.models import Invoice, InvoiceStatus
from invoices.services import invoice_checksum_mismatch_record, invoice_void
from o2s.api.base import O2SAPIView, O2SIdempotentPostView, read_in_one_transaction
from o2s.api.schema import BODY_ERRORS, COMMON_ERRORS, IDEMPOTENCY_KEY, error_responses
from o2s.api.serializers import (
    CustomerCreateRequestSerializer,
    CustomerLookupQuerySerializer,
    CustomerSerializer,
    CustomerUpdateRequestSerializer,
    InvoiceCreateRequestSerializer,
    InvoiceListQuerySerializer,
    InvoicePageSerializer,
    InvoicePreviewSerializer,
    InvoiceSerializer,
    InvoiceVoidRequestSerializer,
    ProductListSerializer,
    ProductSerializer,
    preview_document,
    validated,
)
from o2s.selectors import o2s_invoice_get, o2s_invoices_list
from o2s.services import O2SLine, o2s_invoice_create, o2s_invoice_preview
from paymenter.principals import ApiKeyPrincipal

CUSTOMERS = ["customers"]
PRODUCTS = ["products"]


class CustomersView(O2SIdempotentPostView):
    @extend_schema(
        operation_id="customers_lookup",
        tags=CUSTOMERS,
        summary="Find a customer by O2S external id",
        parameters=[
            OpenApiParameter(
                "external_id",
                {"type": "string", "minLength": 1, "maxLength": 64},
                OpenApiParameter.QUERY,
                required=True,
                description="O2S's id of the customer",
            )
        ],
        responses={200: CustomerSerializer, **error_responses(400, 404, *COMMON_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        """The customer with this O2S id, or 404 `customer_not_found`."""
        query = validated(CustomerLookupQuerySerializer, request.query_params.dict())
        customer = customer_get_by_external_id(principal=self.principal, external_id=query["external_id"])
        return Response(CustomerSerializer(customer).data)

    @extend_schema(
        operation_id="customers_create",
        tags=CUSTOMERS,
        summary="Create a customer",
        parameters=[IDEMPOTENCY_KEY],
        request=CustomerCreateRequestSerializer,
        responses={201: CustomerSerializer, **error_responses(*BODY_ERRORS, 409, 422, *COMMON_ERRORS)},
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Personal data (name, email, phone, postal address, tax id) is stored encrypted.
        `external_id` and `email` are unique (409)."""
        return super().post(request, *args, **kwargs)

    def perform_post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(CustomerCreateRequestSerializer, request.data)
        customer = customer_create(principal=self.principal, **data)
        return Response(CustomerSerializer(customer).data, status=status.HTTP_201_CREATED)


class CustomerView(O2SAPIView):
    @extend_schema(
        operation_id="customers_retrieve",
        tags=CUSTOMERS,
        summary="Get a customer",
        responses={200: CustomerSerializer, **error_responses(404, *COMMON_ERRORS)},
    )
    def get(self, request: Request, customer_id: uuid.UUID) -> Response:
        """One customer by our id, personal data decrypted."""
        customer = customer_get(principal=self.principal, customer_id=customer_id)
        return Response(CustomerSerializer(customer).data)

    @extend_schema(
        operation_id="customers_update",
        tags=CUSTOMERS,
        summary="Change a customer's contact details or billing country",
        description="Only the fields sent change. `external_id` is fixed (400 `unknown_field`).",
        request=CustomerUpdateRequestSerializer,
        responses={200: CustomerSerializer, **error_responses(*BODY_ERRORS, 404, 409, *COMMON_ERRORS)},
    )
    def patch(self, request: Request, customer_id: uuid.UUID) -> Response:
        """Only the fields sent change; `null` clears phone, postal address or tax id.
        `external_id` is fixed (400 `unknown_field`). Changes are audited (field names only)."""
        changes = validated(CustomerUpdateRequestSerializer, request.data)
        customer = customer_update(principal=self.principal, customer_id=customer_id, changes=changes)
        return Response(CustomerSerializer(customer).data)


class ProductsView(O2SAPIView):
    @extend_schema(
        operation_id="products_list",
        tags=PRODUCTS,
        summary="The active product catalogue, with prices per currency",
        responses={200: ProductListSerializer, **error_responses(*COMMON_ERRORS)},
    )
    @read_in_one_transaction
    def get(self, request: Request) -> Response:
        """Prices are GST-exclusive, in minor units, one per currency. Managed by staff in the admin."""
        return Response(ProductListSerializer({"results": list(products_active())}).data)


class ProductView(O2SAPIView):
    @extend_schema(
        operation_id="products_retrieve",
        tags=PRODUCTS,
        summary="One active product by code",
        responses={200: ProductSerializer, **error_responses(404, *COMMON_ERRORS)},
    )
    def get(self, request: Request, code: str) -> Response:
        """One active product; 404 `product_not_found` for unknown or retired codes."""
        return Response(ProductSerializer(product_get(code=code)).data)


# --- invoices ----------------------------------------------------------------------

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


def _record_tampered(
    *, principal: ApiKeyPrincipal, invoices: Sequence[Invoice], results: Iterable[Mapping[str, Any]]
) -> None:
    """An issued invoice served with ``checksum_valid: false`` (and so no ``pay_url``) is
    recorded as tampered; only its first detection anywhere audits and alerts."""
    for invoice, item in zip(invoices, results, strict=True):
        if item["status"] != InvoiceStatus.DRAFT and not item["checksum_valid"]:
            invoice_checksum_mismatch_record(principal=principal, invoice=invoice, attempted="o2s_api_read")


def _invoice_data(invoice: Invoice, request: Request, principal: ApiKeyPrincipal) -> dict[str, Any]:
    data = dict(InvoiceSerializer(invoice, context={"request": request}).data)
    _record_tampered(principal=principal, invoices=[invoice], results=[data])
    return data


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
    @read_in_one_transaction
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
        _record_tampered(principal=self.principal, invoices=page, results=results)
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
        # answered from the invoice in memory (customer and lines loaded): no read-back
        return Response(_invoice_data(invoice, request, self.principal), status=status.HTTP_201_CREATED)


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
    @read_in_one_transaction
    def get(self, request: Request, invoice_id: uuid.UUID) -> Response:
        """One invoice with its lines, totals, checksum state and pay link."""
        return Response(
            _invoice_data(o2s_invoice_get(principal=self.principal, invoice_id=invoice_id), request, self.principal)
        )


class InvoiceVoidView(O2SIdempotentPostView):
    @extend_schema(
        operation_id="invoices_void",
        tags=INVOICES,
        summary="Void an unpaid invoice",
        description=(
            "Issued, open (unpaid) invoices only; O2S then also receives an `invoice.voided` callback. "
            "A draft (never issued), paid, void or uncollectible invoice: 409 `invoice_invalid_state`. "
            "An invoice whose checksum fails (`checksum_valid: false`, altered outside Paymenter): "
            "409 `invoice_checksum_mismatch`, nothing voided and no callback. A `reason` holding a card "
            "number: 400 `card_number_not_allowed`."
        ),
        parameters=[IDEMPOTENCY_KEY],
        request=InvoiceVoidRequestSerializer,
        responses={200: InvoiceSerializer, **error_responses(*BODY_ERRORS, 404, 409, 422, *COMMON_ERRORS)},
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().post(request, *args, **kwargs)

    def perform_post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(InvoiceVoidRequestSerializer, request.data)
        invoice = invoice_void(principal=self.principal, invoice_id=kwargs["invoice_id"], reason=data.get("reason", ""))
        return Response(
            _invoice_data(o2s_invoice_get(principal=self.principal, invoice_id=invoice.id), request, self.principal)
        )
