"""The rules after the gateway reported a payment: amount, 3-D Secure, CVC/AVS, card and
payer country, customer risk; each firing and not firing at its boundary, and missing
inputs stated in the assessment rather than crashing."""

from __future__ import annotations

from typing import Any

import pytest

from fraud.engine import Verdict
from fraud.models import Assessment, CustomerRiskFlag, Decision
from fraud.services import customer_risk_clear
from gateways.base import CardFacts, GatewayCode, PaymentMethod
from paymenter.principals import SystemPrincipal
from tests.factories import make_customer, make_invoice
from tests.fraud.helpers import AUTHENTICATED_CARD, Clock, assessor_at, card_report, other_report

pytestmark = [pytest.mark.fraud_rules, pytest.mark.django_db]


def _rule(assessment: Verdict, name: str) -> dict[str, Any]:
    stored = Assessment.objects.get(id=assessment.assessment_id)
    return next(result for result in stored.results if result["rule"] == name)


def _card(**changes: str) -> CardFacts:
    fields = {**AUTHENTICATED_CARD.__dict__, **changes}
    return CardFacts(**fields)


@pytest.mark.parametrize(("unit_minor", "decision"), [(100000, Decision.ALLOW), (100001, Decision.REVIEW)])
def test_amount_over_1000_goes_to_review(system_principal: SystemPrincipal, unit_minor: int, decision: str) -> None:
    invoice = make_invoice(make_customer(billing_country="NZ"), lines=[("Dedicated server", 1, unit_minor)])
    assert invoice.total_minor == unit_minor  # an export: no GST

    assessment = assessor_at(Clock()).after_report(card_report(invoice))

    assert assessment.decision == decision
    amount = _rule(assessment, "amount")
    assert amount["decision"] == decision
    assert amount["inputs"]["threshold"] == "AUD 1,000.00"
    if decision == Decision.REVIEW:
        assert assessment.reasons == ("amount: invoice total AUD 1,000.01 is over AUD 1,000.00",)


def test_a_fully_checked_card_payment_is_allowed_and_every_rule_says_why(system_principal: SystemPrincipal) -> None:
    invoice = make_invoice(make_customer())
    assessment = assessor_at(Clock()).after_report(card_report(invoice))

    stored = Assessment.objects.get(id=assessment.assessment_id)
    assert assessment.decision == Decision.ALLOW
    assert assessment.reasons == ()
    assert [result["rule"] for result in stored.results] == [
        "amount",
        "geography",
        "three_d_secure",
        "card_checks",
        "customer_risk",
    ]
    assert all(result["reason"] for result in stored.results)
    assert stored.stage == "after_report"
    assert stored.transaction_id == "pi_test"


@pytest.mark.parametrize(
    ("result", "decision"),
    [
        ("authenticated", Decision.ALLOW),
        ("attempt_acknowledged", Decision.ALLOW),
        ("failed", Decision.REVIEW),
        ("", Decision.REVIEW),
        ("processing_error", Decision.REVIEW),
    ],
)
def test_three_d_secure_required_for_cards(system_principal: SystemPrincipal, result: str, decision: str) -> None:
    invoice = make_invoice(make_customer())
    assessment = assessor_at(Clock()).after_report(card_report(invoice, card=_card(three_d_secure_result=result)))

    assert assessment.decision == decision
    assert _rule(assessment, "three_d_secure")["inputs"]["three_d_secure_result"] == (
        result or "none: 3-D Secure did not run"
    )


def test_a_card_payment_without_card_facts_is_reviewed_and_says_so(system_principal: SystemPrincipal) -> None:
    invoice = make_invoice(make_customer())
    assessment = assessor_at(Clock()).after_report(card_report(invoice, card=None))

    assert assessment.decision == Decision.REVIEW
    assert "three_d_secure: the gateway reported no card facts: 3-D Secure result unknown" in assessment.reasons
    assert _rule(assessment, "geography")["inputs"]["card_country"] == "skipped: the gateway reported no card country"
    assert _rule(assessment, "card_checks")["inputs"]["cvc_check"] == "not reported"


@pytest.mark.parametrize(
    ("changes", "decision", "reason"),
    [
        ({"cvc_check": "fail"}, Decision.BLOCK, "card_checks: cvc check failed"),
        ({"address_postal_code_check": "fail"}, Decision.REVIEW, "card_checks: address postal code check failed"),
        ({"address_line1_check": "fail"}, Decision.REVIEW, "card_checks: address line1 check failed"),
        ({"cvc_check": "unavailable"}, Decision.ALLOW, None),
        ({"address_postal_code_check": "unchecked"}, Decision.ALLOW, None),
    ],
)
def test_cvc_and_address_checks(
    system_principal: SystemPrincipal, changes: dict[str, str], decision: str, reason: str | None
) -> None:
    invoice = make_invoice(make_customer())
    assessment = assessor_at(Clock()).after_report(card_report(invoice, card=_card(**changes)))

    assert assessment.decision == decision
    assert assessment.reasons == ((reason,) if reason else ())


def test_non_card_payments_skip_the_card_rules(system_principal: SystemPrincipal) -> None:
    invoice = make_invoice(make_customer())
    assessment = assessor_at(Clock()).after_report(
        other_report(invoice, method=PaymentMethod.BANK_TRANSFER, gateway=GatewayCode.BANK_TRANSFER)
    )

    assert assessment.decision == Decision.ALLOW
    assert _rule(assessment, "three_d_secure")["reason"] == "not applicable to bank_transfer"
    assert _rule(assessment, "card_checks")["reason"] == "not applicable to bank_transfer"
    assert "card_country" not in _rule(assessment, "geography")["inputs"]


def test_a_paypal_payment_without_payer_country_says_so(system_principal: SystemPrincipal) -> None:
    invoice = make_invoice(make_customer())
    assessment = assessor_at(Clock()).after_report(
        other_report(invoice, method=PaymentMethod.PAYPAL, gateway=GatewayCode.PAYPAL)
    )

    assert assessment.decision == Decision.ALLOW
    assert _rule(assessment, "geography")["inputs"]["payer_country"] == "skipped: the gateway reported no payer country"


@pytest.mark.parametrize(("country", "decision"), [("KP", Decision.BLOCK), ("NZ", Decision.ALLOW)])
def test_card_issuing_country_against_blocked_countries(
    system_principal: SystemPrincipal, country: str, decision: str
) -> None:
    invoice = make_invoice(make_customer())
    assessment = assessor_at(Clock()).after_report(card_report(invoice, card=_card(country=country)))

    assert assessment.decision == decision
    if decision == Decision.BLOCK:
        assert assessment.reasons == ("geography: blocked country: card country KP",)


def test_a_flagged_customer_is_reviewed_until_the_flag_is_cleared(system_principal: SystemPrincipal) -> None:
    invoice = make_invoice(make_customer())
    flag = CustomerRiskFlag.objects.create(
        customer_id=invoice.customer_id, reason="a payment of invoice X was disputed", source_event_id="evt_test_flag"
    )
    assessor = assessor_at(Clock())

    flagged = assessor.after_report(card_report(invoice))
    customer_risk_clear(principal=system_principal, flag_id=flag.pk)
    cleared = assessor.after_report(card_report(invoice))

    assert flagged.decision == Decision.REVIEW
    assert flagged.reasons == ("customer_risk: customer risk raised: a payment of invoice X was disputed",)
    assert cleared.decision == Decision.ALLOW
