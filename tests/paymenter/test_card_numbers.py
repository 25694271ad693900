"""The one test for card numbers in input (paymenter.card_numbers)."""

from __future__ import annotations

import pytest

from paymenter.card_numbers import CardNumberNotAllowedError, card_number_fields, card_numbers_refuse
from paymenter.redaction import contains_card_number, luhn_valid

# 15 digits across the dashes ("12-3456-4789-9012-6") that pass Luhn by chance
UUID_WITH_A_LUHN_RUN = "abcdef12-3456-4789-9012-6abcdef01234"


def test_nested_fields_are_named_by_their_dotted_path() -> None:
    fields = card_number_fields(
        {"name": "ok", "lines": [{"description": "a"}, {"description": "card 4242 4242 4242 4242"}], "n": 4242}
    )

    assert fields == ["lines.1.description"]


def test_a_uuid_is_an_identifier_even_when_its_digits_pass_luhn() -> None:
    assert luhn_valid("123456478990126")  # its digits across the dashes: a random UUID's false positive

    assert not contains_card_number(UUID_WITH_A_LUHN_RUN)
    assert not contains_card_number(f"Idempotency-Key {UUID_WITH_A_LUHN_RUN}")
    assert card_number_fields({"customer": UUID_WITH_A_LUHN_RUN}) == []
    assert card_number_fields({"customer": UUID_WITH_A_LUHN_RUN + " 4242424242424242"}) == ["customer"]


def test_refusal_names_every_field() -> None:
    with pytest.raises(CardNumberNotAllowedError) as refused:
        card_numbers_refuse({"a": "5555-5555-5555-4444", "b": "378282246310005", "c": "4242424242424241"})

    assert (refused.value.code, refused.value.status_code) == ("card_number_not_allowed", 400)
    assert sorted(refused.value.fields) == ["a", "b"]
