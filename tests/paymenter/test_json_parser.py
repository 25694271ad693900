"""paymenter.json_parser: the one strict JSON parser (depth, UTF-8, constants, duplicate keys)."""

from __future__ import annotations

import io
import time
from typing import Any

import pytest
from rest_framework.exceptions import ParseError

from paymenter.json_parser import MAX_DEPTH, MalformedJSONError, StrictJSONParser, json_depth, json_loads_strict


def _nested(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("5", 0),
        ("[]", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ('{"a": "[[[{{{"}', 1),  # brackets inside a string are text
        ('["\\"]]]"]', 1),  # an escaped quote does not end the string
        ('"\\\\"', 0),
        ('"[[[', 0),  # an unterminated string runs to the end
    ],
)
def test_depth_is_counted_outside_strings(text: str, depth: int) -> None:
    assert json_depth(text) == depth


def test_a_document_at_the_limit_parses() -> None:
    expected: list[Any] = []
    for _ in range(MAX_DEPTH - 1):
        expected = [expected]

    document = json_loads_strict(_nested(MAX_DEPTH))

    assert MAX_DEPTH == 32
    assert document == expected


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 1_000, 100_000, 1_000_000])
def test_deeper_nesting_is_refused_fast_without_recursion(levels: int) -> None:
    started = time.perf_counter()

    with pytest.raises(MalformedJSONError, match="nested deeper than 32 levels"):
        json_loads_strict(b'{"lines": ' + _nested(levels) + b"}")

    assert time.perf_counter() - started < 2.0


def test_an_unclosed_million_brackets_is_refused_fast() -> None:
    started = time.perf_counter()

    with pytest.raises(MalformedJSONError, match="nested deeper than 32 levels"):
        json_loads_strict(b"{" * 1_000_000)

    assert time.perf_counter() - started < 2.0


def test_many_unterminated_strings_are_scanned_in_linear_time() -> None:
    body = b'"' + b'\\"' * 500_000  # every quote is escaped: one string that never ends

    started = time.perf_counter()
    with pytest.raises(MalformedJSONError, match="Unterminated string"):
        json_loads_strict(body)

    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\x00" * 64, "Expecting value: line 1 column 1"),
        (b'{"name": "\xff"}', "the body is not valid UTF-8"),
        (b'{"name": "\xc3\x28"}', "the body is not valid UTF-8"),
        (b'{"name": "\xed\xa0\x80"}', "the body is not valid UTF-8"),  # an encoded surrogate
        ('{"name": "Ä"}'.encode("latin-1"), "the body is not valid UTF-8"),
        (b'{"quantity": NaN}', "NaN is not a JSON number"),
        (b'{"quantity": Infinity}', "Infinity is not a JSON number"),
        (b'{"quantity": -Infinity}', "-Infinity is not a JSON number"),
        (b'{"quantity": 1e999}', "a number is out of range"),
        (b'{"quantity": ' + b"9" * 5000 + b"}", "a number is out of range"),
        (b'{"currency": "AUD", "currency": "USD"}', "an object has a duplicate key"),
        (b'{"lines": [{"quantity": 1, "quantity": 2}]}', "an object has a duplicate key"),
        (b'{"\\ud800": 1}', "a string holds a lone surrogate"),
        (b'{"name": ["\\udfff"]}', "a string holds a lone surrogate"),
        (b"\xef\xbb\xbf{}", "Unexpected UTF-8 BOM"),
        (b'{"name": ', "Expecting value: line 1 column 10"),
    ],
)
def test_what_is_refused_and_why(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedJSONError) as caught:
        json_loads_strict(body)

    assert str(caught.value).startswith(reason)


def test_the_message_never_echoes_the_input() -> None:
    with pytest.raises(MalformedJSONError) as caught:
        json_loads_strict(b'{"4242424242424242": 1, "4242424242424242": 2}')

    assert str(caught.value) == "an object has a duplicate key"


@pytest.mark.parametrize(
    ("body", "document"),
    [
        (b'{"a": 1, "b": [true, null, 1.5, "x\\u00e9"]}', {"a": 1, "b": [True, None, 1.5, "xé"]}),
        ('{"name": "Zoë 😀"}'.encode(), {"name": "Zoë 😀"}),
        (b'{"emoji": "\\ud83d\\ude00"}', {"emoji": "😀"}),  # a surrogate pair is one character
        (b'{"name": "a\\u0000b"}', {"name": "a\x00b"}),  # valid JSON: the text field refuses it
        (b'{"a": {"x": 1}, "b": {"x": 1}}', {"a": {"x": 1}, "b": {"x": 1}}),  # same key, other objects
        (b"[]", []),
        (b'"text"', "text"),
    ],
)
def test_what_is_accepted(body: bytes, document: Any) -> None:
    assert json_loads_strict(body) == document


def test_the_drf_parser_turns_a_refusal_into_a_parse_error() -> None:
    parser = StrictJSONParser()

    with pytest.raises(ParseError) as caught:
        parser.parse(io.BytesIO(_nested(1_000)), "application/json", {})

    assert str(caught.value.detail) == "JSON parse error - nested deeper than 32 levels"
    assert parser.parse(io.BytesIO(b'{"a": 1}'), "application/json", {}) == {"a": 1}
