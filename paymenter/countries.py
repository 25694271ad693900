"""The one test of a country code: ISO 3166-1 alpha-2, from the maintained ``pycountry`` list.

A country decides tax (``billing_country``: AU pays 10% GST, anywhere else is a GST-free
export) and, later, fraud rules (card and IP country). A shape test (two letters) let a
typo such as ``ZZ`` through and silently made an Australian customer GST-free; so every
place a country enters - the O2S serializers, the billing services, the admin form -
asks this module instead.

Codes are compared case-insensitively and stored upper case (``au`` -> ``AU``), as they
always were. Only officially assigned codes count: user-assigned (``ZZ``, ``XK``) and
reserved ones (``UK``, ``EU``) are refused; the United Kingdom is ``GB``.
"""

from __future__ import annotations

from functools import cache

import pycountry

INVALID_MESSAGE = "an ISO 3166-1 alpha-2 country code such as AU"


@cache
def _codes() -> frozenset[str]:
    return frozenset(country.alpha_2 for country in pycountry.countries)


def country_code_normalise(code: object) -> str | None:
    """``code`` upper case if it is an assigned ISO 3166-1 alpha-2 code, else ``None``.
    Surrounding whitespace is not accepted: callers strip their own input if they mean to."""
    # ASCII first: the dotless i (U+0131) upper-cases to "I", so "a" + it would pass as AI
    if not isinstance(code, str) or len(code) != 2 or not code.isascii():
        return None
    upper = code.upper()
    return upper if upper in _codes() else None


def country_code_valid(code: object) -> bool:
    """Whether ``code`` (any case) is an assigned ISO 3166-1 alpha-2 code."""
    return country_code_normalise(code) is not None
