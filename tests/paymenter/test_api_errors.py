"""Every API refusal is ``{"error": {"code", "message", "fields"}}`` with a 4xx, never a 500."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.test import Client
from django.urls import path
from rest_framework import exceptions, serializers
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from config.urls import handler400, handler403, handler404, handler500  # noqa: F401 - used as urlconf
from config.urls import urlpatterns as base_urlpatterns
from paymenter.api_errors import exception_handler
from paymenter.errors import PaymenterError

pytestmark = pytest.mark.urls("tests.paymenter.test_api_errors")


class AmountRefused(PaymenterError):
    status_code = 409


class LineSerializer(serializers.Serializer[Any]):
    amount_minor = serializers.IntegerField(min_value=1)


class InvoiceSerializer(serializers.Serializer[Any]):
    currency = serializers.CharField(max_length=3)
    lines = LineSerializer(many=True)


class EchoView(APIView):
    permission_classes: ClassVar[list[type[AllowAny]]] = [AllowAny]  # type: ignore[misc]

    def post(self, request: Request) -> Response:
        serializer = InvoiceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(serializer.validated_data)


class RaisingView(APIView):
    permission_classes: ClassVar[list[type[AllowAny]]] = [AllowAny]  # type: ignore[misc]

    def get(self, request: Request) -> Response:
        kind = request.query_params.get("kind")
        if kind == "domain":
            raise AmountRefused(
                code="amount_refused", message="Amount exceeds the limit.", fields={"amount": ["too big"]}
            )
        if kind == "django_validation":
            raise DjangoValidationError({"amount": ["Must be positive."], "__all__": ["Inconsistent."]})
        if kind == "http404":
            raise Http404("secret internal detail")
        if kind == "non_field":
            raise serializers.ValidationError("Currency and customer do not match.")
        raise RuntimeError("boom: internal detail")


class NoCredentials(BaseAuthentication):
    def authenticate(self, request: Request) -> None:
        return None

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class PrivateView(APIView):
    authentication_classes: ClassVar[list[type[BaseAuthentication]]] = [NoCredentials]  # type: ignore[misc]
    permission_classes: ClassVar[list[type[IsAuthenticated]]] = [IsAuthenticated]  # type: ignore[misc]

    def get(self, request: Request) -> Response:
        return Response({})


class AlwaysThrottled(BaseThrottle):
    def allow_request(self, request: Request, view: APIView) -> bool:
        return False

    def wait(self) -> float:
        return 41.2


class ThrottledView(APIView):
    permission_classes: ClassVar[list[type[AllowAny]]] = [AllowAny]  # type: ignore[misc]
    throttle_classes: ClassVar[list[type[BaseThrottle]]] = [AlwaysThrottled]  # type: ignore[misc]

    def get(self, request: Request) -> Response:
        return Response({})


urlpatterns = [
    *base_urlpatterns,
    path("api/echo", EchoView.as_view()),
    path("api/raise", RaisingView.as_view()),
    path("api/private", PrivateView.as_view()),
    path("api/throttled", ThrottledView.as_view()),
]


def error(response: Any) -> dict[str, Any]:
    assert response["Content-Type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"}
    inner: dict[str, Any] = body["error"]
    assert set(inner) == {"code", "message", "fields"}
    return inner


def test_validation_error_lists_fields_with_dotted_paths(client: Client) -> None:
    response = client.post(
        "/api/echo",
        {"currency": "AUDX", "lines": [{"amount_minor": 5}, {"amount_minor": 0}]},
        content_type="application/json",
    )

    assert response.status_code == 400
    assert error(response) == {
        "code": "validation_error",
        "message": "Invalid input: currency, lines.1.amount_minor.",
        "fields": {
            "currency": ["Ensure this field has no more than 3 characters."],
            "lines.1.amount_minor": ["Ensure this value is greater than or equal to 1."],
        },
    }


def test_missing_fields_are_validation_errors(client: Client) -> None:
    response = client.post("/api/echo", {}, content_type="application/json")

    assert response.status_code == 400
    assert error(response)["fields"] == {
        "currency": ["This field is required."],
        "lines": ["This field is required."],
    }


def test_non_field_validation_error_becomes_the_message(client: Client) -> None:
    response = client.get("/api/raise", {"kind": "non_field"})

    assert response.status_code == 400
    assert error(response) == {
        "code": "validation_error",
        "message": "Currency and customer do not match.",
        "fields": {"non_field_errors": ["Currency and customer do not match."]},
    }


def test_malformed_json_is_400(client: Client) -> None:
    response = client.post("/api/echo", '{"currency": "AUD",', content_type="application/json")

    assert response.status_code == 400
    assert error(response)["code"] == "malformed_json"


def test_unsupported_media_type_is_415(client: Client) -> None:
    response = client.post("/api/echo", "currency=AUD", content_type="text/plain")

    assert response.status_code == 415
    assert error(response)["code"] == "unsupported_media_type"


def test_method_not_allowed_is_405(client: Client) -> None:
    response = client.delete("/api/echo")

    assert response.status_code == 405
    assert error(response)["code"] == "method_not_allowed"
    assert "POST" in response["Allow"]


def test_unauthenticated_is_401(client: Client) -> None:
    response = client.get("/api/private")

    assert response.status_code == 401
    assert error(response)["code"] == "unauthenticated"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_throttled_is_429_with_retry_after(client: Client) -> None:
    response = client.get("/api/throttled")

    assert response.status_code == 429
    assert error(response)["code"] == "rate_limited"
    assert response["Retry-After"] == "42"


def test_domain_error_keeps_its_status_code_and_fields(client: Client) -> None:
    response = client.get("/api/raise", {"kind": "domain"})

    assert response.status_code == 409
    assert error(response) == {
        "code": "amount_refused",
        "message": "Amount exceeds the limit.",
        "fields": {"amount": ["too big"]},
    }


def test_django_validation_error_is_400_not_500(client: Client) -> None:
    response = client.get("/api/raise", {"kind": "django_validation"})

    assert response.status_code == 400
    assert error(response) == {
        "code": "validation_error",
        "message": "Invalid input: amount.",
        "fields": {"amount": ["Must be positive."], "non_field_errors": ["Inconsistent."]},
    }


def test_http404_in_a_view_is_not_found_without_its_detail(client: Client) -> None:
    response = client.get("/api/raise", {"kind": "http404"})

    assert response.status_code == 404
    assert error(response) == {"code": "not_found", "message": "Not found.", "fields": {}}


def test_unknown_api_path_is_json_404(client: Client) -> None:
    response = client.get("/api/no-such-endpoint")

    assert response.status_code == 404
    assert error(response) == {"code": "not_found", "message": "Not found.", "fields": {}}


def test_unknown_non_api_path_keeps_the_html_404(client: Client) -> None:
    response = client.get("/no-such-page")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_unexpected_exception_is_a_json_500_without_details() -> None:
    client = Client(raise_request_exception=False)

    response = client.get("/api/raise", {"kind": "crash"}, headers={"X-Request-ID": "req-crash-0001"})

    assert response.status_code == 500
    assert error(response) == {"code": "internal_error", "message": "An internal error occurred.", "fields": {}}
    assert b"internal detail" not in response.content
    assert response["X-Request-ID"] == "req-crash-0001"


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (RequestDataTooBig("too big"), 413, "payload_too_large"),
        (SuspiciousOperation("evil"), 400, "bad_request"),
        (DjangoPermissionDenied(), 403, "permission_denied"),
        (exceptions.NotAcceptable(), 406, "not_acceptable"),
    ],
    ids=["too-big", "suspicious", "django-permission-denied", "not-acceptable"],
)
def test_handler_maps_django_level_exceptions(exc: Exception, status: int, code: str) -> None:
    response = exception_handler(exc, {})

    assert response is not None
    assert response.status_code == status
    assert response.data["error"]["code"] == code


def test_handler_leaves_unexpected_exceptions_to_django() -> None:
    assert exception_handler(RuntimeError("boom"), {}) is None


def test_oversized_json_body_is_413(client: Client, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = '{"currency": "AUD", "lines": [], "pad": "' + "x" * 5000 + '"}'

    response = client.post("/api/echo", body, content_type="application/json")

    assert response.status_code == 413
    assert error(response)["code"] == "payload_too_large"
