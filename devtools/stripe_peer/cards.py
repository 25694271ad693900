"""What a test card number means: Stripe's documented test cards, mapped onto localstripe.

localstripe knows only a few numbers (which need 3-D Secure, which are declined when charged) and
reports every card as a French credit Visa with every check passing. Stripe's documentation gives
more test cards (failed CVC/postcode/address checks, an Australian card, decline reasons), so the
peer keeps those facts itself, keyed by PaymentIntent, and tells localstripe only a number that
makes it behave the same way (a charge-declined number for Stripe's declined cards).

Card numbers are never stored: a PaymentIntent's :class:`CardFacts` hold only derived values
(last4, brand, checks), and any number that is not a published test card is replaced by
4242424242424242 before it reaches localstripe (whose state file would otherwise keep it).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

# localstripe's PaymentMethod._requires_authentication: confirming asks for 3-D Secure.
LOCALSTRIPE_CHALLENGES = frozenset(
    {
        "4000002500003155",
        "4000002760003184",
        "4000008260003178",
        "4000000000003220",
        "4000000000003063",
        "4000008400001629",
    }
)
# localstripe's PaymentMethod._charging_is_declined (the last two after authentication).
LOCALSTRIPE_DECLINES = frozenset({"4000000000000341", "4000008260003178", "4000008400001629"})
DECLINED_AT_LOCALSTRIPE = "4000000000000341"
SUBSTITUTE = "4242424242424242"

# https://docs.stripe.com/testing#declined-payments
DECLINE_CODES = {
    "4000000000000002": "generic_decline",
    "4000000000009995": "insufficient_funds",
    "4000000000009987": "lost_card",
    "4000000000009979": "stolen_card",
    "4000000000000069": "expired_card",
    "4000000000000127": "incorrect_cvc",
    "4000000000000119": "processing_error",
    "4000000000000341": "generic_decline",
    "4000008260003178": "insufficient_funds",
    "4000008400001629": "generic_decline",
}
# https://docs.stripe.com/testing#international-cards (those that matter for tax by country)
COUNTRIES = {
    "4000000360000006": "AU",
    "4000003560000008": "IN",
    "4000008260000000": "GB",
    "4000002760000016": "DE",
    "4000002500000003": "FR",
    "4000001240000000": "CA",
}
# https://docs.stripe.com/testing#cards-responses: the charge succeeds, the check fails.
FAILED_CHECK = {
    "4000000000000101": "cvc_check",
    "4000000000000036": "address_postal_code_check",
    "4000000000000028": "address_line1_check",
}
PUBLISHED = frozenset(
    {
        SUBSTITUTE,
        "5555555555554444",
        *LOCALSTRIPE_CHALLENGES,
        *LOCALSTRIPE_DECLINES,
        *DECLINE_CODES,
        *COUNTRIES,
        *FAILED_CHECK,
    }
)
EXP_MONTH = 12
EXP_YEAR = 2034


@dataclasses.dataclass(frozen=True)
class CardFacts:
    """What the peer reports in ``charge.payment_method_details.card`` for one PaymentIntent."""

    last4: str
    brand: str
    country: str
    fingerprint: str
    funding: str = "credit"
    exp_month: int = EXP_MONTH
    exp_year: int = EXP_YEAR
    cvc_check: str = "pass"
    address_postal_code_check: str = "pass"
    address_line1_check: str = "pass"
    decline_code: str | None = None
    three_d_secure: str | None = None  # "authenticated" | "failed" | None (never challenged)


def luhn_ok(number: str) -> bool:
    """The checksum every card number carries; Stripe refuses numbers failing it."""
    if not (number.isdigit() and 13 <= len(number) <= 19):
        return False
    total = 0
    for i, char in enumerate(reversed(number)):
        digit = int(char) * (2 if i % 2 else 1)
        total += digit - 9 if digit > 9 else digit
    return total % 10 == 0


def brand(number: str) -> str:
    return {"4": "visa", "5": "mastercard", "2": "mastercard", "3": "amex", "6": "discover"}.get(number[0], "unknown")


def facts_for(number: str) -> CardFacts:
    failed = FAILED_CHECK.get(number)
    return CardFacts(
        last4=number[-4:],
        brand=brand(number),
        country=COUNTRIES.get(number, "US"),
        # Stable per number like Stripe's, but not reversible (a salted digest, 16 characters).
        fingerprint=hashlib.sha256(b"stripe-peer:" + number.encode()).hexdigest()[:16],
        decline_code=DECLINE_CODES.get(number),
        cvc_check="fail" if failed == "cvc_check" else "pass",
        address_postal_code_check="fail" if failed == "address_postal_code_check" else "pass",
        address_line1_check="fail" if failed == "address_line1_check" else "pass",
    )


def facts_from_payment_method(payment_method: dict[str, Any]) -> CardFacts:
    """For PaymentIntents the peer did not create (the app used the API directly).

    localstripe says every card is French; Stripe's test cards (``pm_card_visa``) are American.
    """
    card = payment_method.get("card") or {}
    return CardFacts(
        last4=str(card.get("last4", "")),
        brand=str(card.get("brand", "visa")),
        country="US",
        fingerprint=str(card.get("fingerprint", "")),
        funding=str(card.get("funding", "credit")),
        exp_month=int(card.get("exp_month", EXP_MONTH)),
        exp_year=int(card.get("exp_year", EXP_YEAR)),
    )


def localstripe_number(number: str) -> str:
    """The number to register at localstripe so that it behaves as Stripe would for ``number``."""
    if number in LOCALSTRIPE_CHALLENGES or number in LOCALSTRIPE_DECLINES:
        return number
    if number in DECLINE_CODES:
        return DECLINED_AT_LOCALSTRIPE
    if number not in PUBLISHED or len(number) != 16:  # localstripe accepts 16 digits only
        return SUBSTITUTE
    return number
