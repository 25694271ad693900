"""Error codes of the O2S integration: API keys, ``Idempotency-Key`` and O2S invoice requests."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from paymenter.errors import PaymenterError


class ApiKeyErrorCode(StrEnum):
    INVALID_API_KEY = "invalid_api_key"
    API_KEY_NOT_FOUND = "api_key_not_found"
    UNAUTHENTICATED = "unauthenticated"


class ApiKeyRefusalReason(StrEnum):
    """Why a presented key was refused. Goes to the audit trail only, never to the client."""

    MISSING = "missing"
    MALFORMED = "malformed"
    UNKNOWN = "unknown"  # no such lookup id, or the secret does not match it
    REVOKED = "revoked"
    EXPIRED = "expired"


class ApiKeyError(PaymenterError):
    pass


class InvalidApiKeySpecError(ApiKeyError):
    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__(
            code=ApiKeyErrorCode.INVALID_API_KEY, message="The API key settings are invalid.", fields=fields
        )


class ApiKeyNotFoundError(ApiKeyError):
    status_code = 404

    def __init__(self) -> None:
        super().__init__(code=ApiKeyErrorCode.API_KEY_NOT_FOUND, message="No such API key.")


class ApiKeyRefusedError(ApiKeyError):
    """The presented key does not authenticate. The message is the same for every reason.

    ``lookup_id`` is the public part of the key when the key parsed (for the audit trail).
    """

    status_code = 401

    def __init__(self, reason: ApiKeyRefusalReason, *, lookup_id: str = "") -> None:
        super().__init__(code=ApiKeyErrorCode.UNAUTHENTICATED, message="Invalid or missing API key.")
        self.reason = reason
        self.lookup_id = lookup_id


class O2SInvoiceErrorCode(StrEnum):
    UNKNOWN_CUSTOMER = "unknown_customer"
    CUSTOM_LINES_NOT_PERMITTED = "custom_lines_not_permitted"


class UnknownCustomerError(PaymenterError):
    """The invoice names a customer we do not have: the body is well-formed but refers
    to nothing (422), unlike ``GET /customers/{id}/`` of a missing one (404)."""

    status_code = 422

    def __init__(self, *, field: str) -> None:
        super().__init__(
            code=O2SInvoiceErrorCode.UNKNOWN_CUSTOMER,
            message="The invoice names an unknown customer.",
            fields={field: ["unknown customer"]},
        )


class CustomLinesNotPermittedError(PaymenterError):
    """A line with an explicit unit amount from a key without the permission (403)."""

    status_code = 403

    def __init__(self, *, positions: Sequence[int]) -> None:
        super().__init__(
            code=O2SInvoiceErrorCode.CUSTOM_LINES_NOT_PERMITTED,
            message="This API key may not send lines with an explicit unit amount; use product codes.",
            fields={f"lines.{index}.unit_amount_minor": ["not permitted for this API key"] for index in positions},
        )


HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


class IdempotencyErrorCode(StrEnum):
    KEY_INVALID = "idempotency_key_invalid"
    KEY_IN_USE = "idempotency_key_in_use"
    KEY_REUSED = "idempotency_key_reused"


class IdempotencyError(PaymenterError):
    pass


class IdempotencyKeyInvalidError(IdempotencyError):
    status_code = 400

    def __init__(self) -> None:
        super().__init__(
            code=IdempotencyErrorCode.KEY_INVALID,
            message=f"The {HEADER} header must be 1 to {MAX_KEY_LENGTH} printable ASCII characters.",
            fields={HEADER: ["1 to 255 printable ASCII characters, no leading or trailing space"]},
        )


class IdempotencyKeyInUseError(IdempotencyError):
    """Transient: the first request with this key has not finished; retry shortly."""

    status_code = 409

    def __init__(self) -> None:
        super().__init__(
            code=IdempotencyErrorCode.KEY_IN_USE,
            message=f"A request with this {HEADER} is still being processed; retry shortly.",
        )


class IdempotencyKeyReusedError(IdempotencyError):
    """Terminal: the key already belongs to a different request."""

    status_code = 422

    def __init__(self) -> None:
        super().__init__(
            code=IdempotencyErrorCode.KEY_REUSED,
            message=f"This {HEADER} was already used with a different request; use a new key.",
        )
