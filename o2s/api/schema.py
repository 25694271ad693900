"""OpenAPI (drf-spectacular) pieces shared by the O2S endpoints: the bearer-key security
scheme, the error responses, the ``Idempotency-Key`` header and the path filter."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.views.decorators import staff_member_required
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiYamlRenderer
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAdminUser
from rest_framework.renderers import JSONRenderer

from o2s.api.authentication import ApiKeyAuthentication, IsApiClient
from o2s.api.serializers import ErrorSerializer

API_PREFIX = "/api/v1/"


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "o2s.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "pmk_<lookup>_<secret>",
            "description": (
                "An O2S API key: `Authorization: Bearer <key>`. A key works only from its allowed "
                "networks, until it expires or is revoked; see docs/api-keys.md."
            ),
        }


def only_o2s_api(endpoints: list[tuple[Any, ...]], **kwargs: Any) -> list[tuple[Any, ...]]:
    """Preprocessing hook: the schema documents ``/api/v1/`` and nothing else."""
    return [endpoint for endpoint in endpoints if str(endpoint[0]).startswith(API_PREFIX)]


_ERRORS: dict[int, str] = {
    400: (
        "Bad input: `malformed_json`, `validation_error` (wrong type, out of range, missing), "
        "`unknown_field` (a field the operation does not accept), `card_number_not_allowed` (a card number "
        "in a field, a query parameter or the Idempotency-Key), `unknown_currency`, `invalid_customer`, "
        "`invalid_invoice`, `idempotency_key_invalid`"
    ),
    401: "`unauthenticated`: no key, an unknown, expired or revoked key",
    403: "`ip_not_allowed` (not from the key's networks), `custom_lines_not_permitted`, `permission_denied`",
    404: "`not_found`, `customer_not_found`, `invoice_not_found`, `product_not_found`",
    409: (
        "`duplicate_customer`, `duplicate_email`, `invoice_invalid_state` (the action is not allowed in the "
        "invoice's state, e.g. voiding a draft), `invoice_checksum_mismatch` (the invoice fails its integrity "
        "check: nothing is done), `idempotency_key_in_use`, `conflict` (the request clashed with stored data)"
    ),
    413: "`payload_too_large`: the body is over the size limit",
    415: "`unsupported_media_type`: the body must be `application/json`",
    422: (
        "`unknown_product`, `product_not_priced_in_currency`, `unknown_customer`, `currency_mismatch`, "
        "`idempotency_key_reused`"
    ),
    429: "`rate_limited`: the key's per-minute limit; see `Retry-After`",
    503: "`tax_rate_missing`: no GST rate is configured for today (operations); retry later",
}


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """The error shape under each given status (with the codes that status may carry)."""
    return {status: OpenApiResponse(response=ErrorSerializer, description=_ERRORS[status]) for status in statuses}


#: every operation can meet these (auth, allowlist, rate limit)
COMMON_ERRORS = (401, 403, 429)
#: and every operation with a body these
BODY_ERRORS = (400, 413, 415)

IDEMPOTENCY_KEY = OpenApiParameter(
    name="Idempotency-Key",
    type={"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$"},
    location=OpenApiParameter.HEADER,
    required=False,
    description=(
        "Up to 255 printable ASCII characters. The first successful response to a key is stored for "
        "24 hours and replayed (with `Idempotent-Replayed: true`) to a retry of the same request; "
        "see docs/idempotency.md."
    ),
)


# --- the schema and the staff docs page (paymenter/urls.py) ------------------------------


class SchemaView(SpectacularAPIView):
    """``/api/v1/schema/``: for an O2S key (CI, client generation) or a staff session
    (the docs page fetches it with the staff member's cookie)."""

    authentication_classes = [SessionAuthentication, ApiKeyAuthentication]
    permission_classes = [IsAdminUser | IsApiClient]
    # JSON first: the default answer, and refusals come in the one JSON error shape;
    # YAML on request (Accept: application/vnd.oai.openapi or ?format=yaml)
    renderer_classes = [JSONRenderer, OpenApiJsonRenderer, OpenApiYamlRenderer]


#: ``/api/v1/docs/``: Swagger UI from the bundled (offline) assets, for logged-in staff only;
#: anyone else is sent to the admin login. Its template fits the Content-Security-Policy: no
#: inline style, and the start-up script carries the CSP nonce (docs/security.md).
docs_view = staff_member_required(
    SpectacularSwaggerView.as_view(
        url_name="o2s-schema",
        template_name="o2s/swagger_ui.html",
        authentication_classes=[SessionAuthentication],
        permission_classes=[IsAdminUser],
    )
)
