"""The one JSON parser of every JSON endpoint: strict, bounded, never a 500.

``StrictJSONParser`` is DRF's default parser (``REST_FRAMEWORK`` in settings) and the O2S
views'; an endpoint that must see the raw bytes first (a gateway webhook verifies its
signature over them) calls :func:`json_loads_strict` itself. A body it refuses is 400
``malformed_json`` (``paymenter.api_errors``), with nothing read further and nothing written.

Refused, besides what is not JSON at all (docs/o2s-integration.md, "Errors"):

* **nesting deeper than** ``MAX_DEPTH`` (32) arrays/objects. The depth is counted by a flat
  scan *before* parsing, so 100,000 levels cost one pass over the text and never reach the
  recursive decoder (which raised ``RecursionError``, a 500, at about 1,000 levels);
* a body that is **not UTF-8** (RFC 8259 section 8.1: JSON between systems is UTF-8; a
  ``charset`` parameter does not change that), a body of NUL bytes or any other raw control
  character outside a string (not JSON), and a ``\\ud800``-style escape of a lone surrogate
  (not Unicode text; echoed as an unknown key it crashed the error renderer). An escaped NUL
  (``\\u0000``) inside a string is valid JSON; the text fields refuse it themselves
  (400 ``validation_error`` naming the field: PostgreSQL cannot store it);
* ``NaN``, ``Infinity``, ``-Infinity`` and numbers too large for a float (``1e999``): not JSON
  (RFC 8259 section 6), and no amount or quantity is a float here;
* **duplicate object keys**. RFC 8259 leaves their meaning open: Python keeps the last,
  other parsers the first or fail. A proxy, a signature check or an audit reader that
  picks the other one would see a different request from the one we acted on, so we
  refuse instead of choosing.

The body size stays limited by Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (413
``payload_too_large``): the parser derives from DRF's ``JSONParser``, for which DRF reads
the body through ``request.body``, where Django enforces the limit.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from itertools import accumulate
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 32

# A JSON string (escapes included; an unterminated one runs to the end, so every quote
# starts exactly one match and the scan stays linear) or a run of anything but brackets.
# Removing both leaves the brackets outside strings. In an invalid document a bracket may
# be miscounted, which can only refuse what the decoder would refuse anyway.
_NOT_A_BRACKET = re.compile(r'"(?:[^"\\]|\\.?)*+(?:"|\Z)|[^"\[\]{}]+', re.DOTALL)
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class MalformedJSONError(ValueError):
    """The body is not a JSON document this API accepts; the message says why, without
    echoing any of the input."""


def json_depth(text: str) -> int:
    """How deep ``text`` nests arrays and objects (``[[1]]`` is 2), counted without parsing
    or recursion: a regular-expression pass and a running sum, both in C."""
    brackets = _NOT_A_BRACKET.sub("", text)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _refuse_constant(name: str) -> Any:
    raise MalformedJSONError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise MalformedJSONError("a number is out of range")
    return value


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        raise MalformedJSONError("an object has a duplicate key")
    return document


def _refuse_lone_surrogates(document: Any) -> None:
    """A ``\\ud800`` escape decodes to a code point UTF-8 cannot encode: such a key crashed the
    JSON renderer of the error that echoed it (a 500). Iterative: a wide document must not
    cost a stack frame per value."""
    pending = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, Mapping):
            texts: Any = value.keys()
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
            continue
        elif isinstance(value, str):
            texts = (value,)
        else:
            continue
        for text in texts:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise MalformedJSONError("a string holds a lone surrogate, which is not Unicode text") from None


def json_loads_strict(body: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``body`` (UTF-8 bytes) by the rules of this module, or raise
    :class:`MalformedJSONError`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedJSONError("the body is not valid UTF-8") from None
    if json_depth(text) > max_depth:
        raise MalformedJSONError(f"nested deeper than {max_depth} levels")
    try:
        document = json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            object_pairs_hook=_object_without_duplicates,
        )
    except MalformedJSONError:
        raise
    except ValueError as exc:  # JSONDecodeError, or an integer over Python's digit limit
        raise MalformedJSONError(_decode_problem(exc)) from None
    if _SURROGATE_ESCAPE.search(text):  # else no string can hold one: UTF-8 has no surrogates
        _refuse_lone_surrogates(document)
    return document


def _decode_problem(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg}: line {exc.lineno} column {exc.colno}"
    return "a number is out of range"


class StrictJSONParser(JSONParser):
    """DRF parser for ``application/json`` with the rules of :func:`json_loads_strict`."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        try:
            return json_loads_strict(stream.read())
        except MalformedJSONError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
