"""Redaction of card numbers and secrets, shared by the log filter and the audit trail.

* Any run of 13-19 digits (spaces or dashes allowed between digits) that passes the Luhn
  check is replaced by ``[REDACTED:PAN]``: a card number must never reach a log or a row.
* So is a URL-encoded one in a URL, a request line or a query string (``?q=4242+4242+...``,
  ``4242%204242...``): each path segment, query name and value is decoded and tested.
* Values under secret-looking keys (password, secret, token, api_key, authorization,
  cvv, card number ...) become ``[REDACTED]``.
* Bearer tokens, ``key=value`` secrets in free text and our own key prefixes are masked,
  and so is the token of a pay link (``/pay/<token>/``), a credential for its invoice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

REDACTED = "[REDACTED]"
REDACTED_PAN = "[REDACTED:PAN]"

# UUIDs are ours, not cards: the digit groups of a random UUID form a Luhn-valid run of 13+
# digits about once in a few thousand (an invoice id in an alert line, a request id), so a
# UUID is matched whole and kept; anything else with such a run is masked.
_PAN_OR_UUID = re.compile(
    r"(?P<uuid>(?<![0-9a-fA-F-])[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
    r"[0-9a-fA-F]{12}(?![0-9a-fA-F-]))"
    r"|(?<![\d])(?:\d[ -]?){12,18}\d(?![\d])"
)
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
# A pay link's token is a credential for its invoice: not in logs (e.g. "Not Found: /pay/<token>/").
_PAY_LINK_TOKEN = re.compile(r"(/pay/)[^/\s\"'<>?#]+")
# A run between spaces and quotes (a URL or request target in a log line), and the
# delimiters that split one into path segments, query names and values.
_URL_LIKE = re.compile(r"[^\s\"'<>]+")
_URL_DELIMITER = re.compile(r"([/?&;=#])")


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
    if match.group("uuid"):
        return match.group(0)
    digits = re.sub(r"[ -]", "", match.group(0))
    if 13 <= len(digits) <= 19 and luhn_valid(digits):
        return REDACTED_PAN
    return match.group(0)


def contains_card_number(text: str) -> bool:
    """Whether ``text`` holds a Luhn-valid run of 13-19 digits (spaces or dashes between
    digits allowed): the same test the redactor masks by."""
    return any(_mask_pan(match) == REDACTED_PAN for match in _PAN_OR_UUID.finditer(text))


def _mask_encoded_pans(match: re.Match[str]) -> str:
    token = match.group(0)
    if "%" not in token and "+" not in token:
        return token  # nothing encoded: the plain pass sees what there is
    pieces = _URL_DELIMITER.split(token)  # odd indexes are the delimiters themselves
    return "".join(
        REDACTED_PAN if index % 2 == 0 and contains_card_number(unquote_plus(piece)) else piece
        for index, piece in enumerate(pieces)
    )


def redact_url_encoded(text: str) -> str:
    """Mask URL-encoded card numbers the plain pass cannot see (``+`` or ``%20`` between the
    digit groups): ``GET /x?card=4242+4242+4242+4242`` -> ``GET /x?card=[REDACTED:PAN]``.
    Only the offending segment, name or value is replaced; the rest of the URL is kept."""
    if "%" not in text and "+" not in text:
        return text
    return _URL_LIKE.sub(_mask_encoded_pans, text)


def redact_text(text: str) -> str:
    text = _PAN_OR_UUID.sub(_mask_pan, redact_url_encoded(text))
    text = _KNOWN_TOKEN.sub(REDACTED, text)
    text = _PAY_LINK_TOKEN.sub(rf"\g<1>{REDACTED}", text)

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
