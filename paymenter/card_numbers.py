"""No card number comes in: every free-text field and identifier we accept is refused
when it holds one (docs/security.md).

Card data never touches our servers (SAQ A). A customer or an operator may still type a
card number into a description, a name or an identifier by mistake; it would then sit in a
row, a log line or a backup. So input is checked where it enters - the O2S API's strict
serializers, the domain services every channel calls, the admin forms - with the same
Luhn test the log and audit redactor uses (``paymenter.redaction``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from paymenter.errors import PaymenterError
from paymenter.redaction import contains_card_number

CODE = "card_number_not_allowed"
FIELD_MESSAGE = "must not contain a card number"


class CardNumberNotAllowedError(PaymenterError):
    """400: a field holds what looks like a card number; ``fields`` names every such field."""

    status_code = 400

    def __init__(self, fields: Iterable[str]) -> None:
        super().__init__(
            code=CODE,
            message="Card numbers must not be sent to us; remove it and pay on the payment page.",
            fields={name: [FIELD_MESSAGE] for name in fields},
        )


def card_number_fields(value: Any, prefix: str = "") -> list[str]:
    """The dotted names of the strings in ``value`` (a JSON-like structure) that hold a card
    number, e.g. ``["lines.0.description"]``; ``prefix`` names ``value`` itself."""
    if isinstance(value, str):
        return [prefix or "non_field_errors"] if contains_card_number(value) else []
    if isinstance(value, Mapping):
        return [
            name
            for key, item in value.items()
            for name in card_number_fields(item, f"{prefix}.{key}" if prefix else str(key))
        ]
    if isinstance(value, list | tuple):
        return [name for index, item in enumerate(value) for name in card_number_fields(item, f"{prefix}.{index}")]
    return []


def card_numbers_refuse(values: Mapping[str, Any]) -> None:
    """Raise :class:`CardNumberNotAllowedError` naming every field of ``values`` (name ->
    value, nested allowed) that holds a card number; return quietly otherwise."""
    fields = card_number_fields(values)
    if fields:
        raise CardNumberNotAllowedError(fields)
