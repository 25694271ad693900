"""paymenter.countries: the one test of an ISO 3166-1 alpha-2 code, from pycountry's list."""

from __future__ import annotations

import pytest

from paymenter.countries import country_code_normalise, country_code_valid


@pytest.mark.parametrize(("code", "normalised"), [("AU", "AU"), ("au", "AU"), ("nZ", "NZ"), ("GB", "GB"), ("US", "US")])
def test_assigned_codes_in_any_case_are_valid_and_upper_cased(code: str, normalised: str) -> None:
    assert country_code_valid(code) is True
    assert country_code_normalise(code) == normalised


@pytest.mark.parametrize(
    "code",
    [
        "ZZ",  # user-assigned: the shape of a code, no country
        "zz",
        "XK",  # user-assigned (Kosovo by convention), not ISO 3166-1
        "UK",  # exceptionally reserved; the United Kingdom is GB
        "EU",  # exceptionally reserved
        "AUS",  # alpha-3
        "A",
        "",
        " AU",  # the caller strips its input if it means to
        "A1",
        "a\u0131",  # a dotless i upper-cases to "AI" (Anguilla): still not a code
        None,
        36,
    ],
)
def test_anything_else_is_not_a_country(code: object) -> None:
    assert country_code_valid(code) is False
    assert country_code_normalise(code) is None
