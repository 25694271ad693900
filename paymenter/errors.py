"""The root of every domain error; the API exception handler maps these to 4xx JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar


class PaymenterError(Exception):
    """An expected, explained refusal: ``{"error": {"code", "message", "fields"}}``.

    ``status_code`` is the HTTP status the API answers with; subclasses set it.
    """

    status_code: ClassVar[int] = 400

    def __init__(
        self,
        *,
        code: str,
        message: str,
        fields: Mapping[str, list[str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields: dict[str, list[str]] = dict(fields or {})

    def as_dict(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message, "fields": self.fields}}
