"""Redaction of card numbers and secrets, shared by the log filter and the audit trail.

* Any run of 13-19 digits (spaces or dashes allowed between digits) that passes the Luhn
  check is replaced by ``[REDACTED:PAN]``: a card number must never reach a log or a row.
* Values under secret-looking keys (password, secret, token, api_key, authorization,
  cvv, card number ...) become ``[REDACTED]``.
* Bearer tokens, ``key=value`` secrets in free text and our own key prefixes are masked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[REDACTED]"
REDACTED_PAN = "[REDACTED:PAN]"

_PAN_CANDIDATE = re.compile(r"(?<![\d])(?:\d[ -]?){12,18}\d(?![\d])")
_SECRET_KEY_NAME = re.compile(
    r"(pass(word)?|secret|token|api[_-]?key|authori[sz]ation|cookie|session|cvv|cvc|"
    r"card[_-]?number|pan|private[_-]?key|signature|credential)",
    re.IGNORECASE,
)
_INLINE_SECRET = re.compile(
    r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"
    r"|((?:password|secret|token|api[_-]?key|cvv|cvc)\s*[=:]\s*)[^\s&,;]+"
)
_KNOWN_TOKEN = re.compile(r"\b(pk_live|sk_live|sk_test|rk_live|rk_test|whsec|pmk)_[A-Za-z0-9_]{6,}")


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _mask_pan(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    if 13 <= len(digits) <= 19 and luhn_valid(digits):
        return REDACTED_PAN
    return match.group(0)


def contains_card_number(text: str) -> bool:
    """Whether ``text`` holds a Luhn-valid run of 13-19 digits (spaces or dashes between
    digits allowed): the same test the redactor masks by."""
    return any(_mask_pan(match) == REDACTED_PAN for match in _PAN_CANDIDATE.finditer(text))


def redact_text(text: str) -> str:
    text = _PAN_CANDIDATE.sub(_mask_pan, text)
    text = _KNOWN_TOKEN.sub(REDACTED, text)

    def _inline(match: re.Match[str]) -> str:
        prefix = match.group(1) or match.group(2) or ""
        return f"{prefix}{REDACTED}"

    return _INLINE_SECRET.sub(_inline, text)


def is_secret_key(name: str) -> bool:
    return bool(_SECRET_KEY_NAME.search(name))


def redact(value: Any) -> Any:
    """Redact a JSON-like structure (dicts, lists, strings, numbers) recursively."""
    if isinstance(value, Mapping):
        return {
            str(key): (REDACTED if is_secret_key(str(key)) and item not in (None, "") else redact(item))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, int) and not isinstance(value, bool) and 13 <= len(str(abs(value))) <= 19:
        return REDACTED_PAN if luhn_valid(str(abs(value))) else value
    return value
