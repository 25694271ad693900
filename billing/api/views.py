"""O2S endpoints for customers and the product catalogue (``/api/v1/``).

One class per URL; each HTTP method on it is one operation with its own request and
response serializers. Views validate shape, call one selector or service, serialize.
"""

from __future__ import annotations

import uuid
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api.base import O2SAPIView, O2SIdempotentPostView
from billing.api.schema import BODY_ERRORS, COMMON_ERRORS, IDEMPOTENCY_KEY, error_responses
from billing.api.serializers import (
    CustomerCreateRequestSerializer,
    CustomerLookupQuerySerializer,
    CustomerSerializer,
    CustomerUpdateRequestSerializer,
    ProductListSerializer,
    ProductSerializer,
    validated,
)
from billing.products import product_get, products_active
from billing.selectors import customer_get, customer_get_by_external_id
from billing.services import customer_create, customer_update

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
