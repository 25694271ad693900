"""Geography before the start: the customer's billing country and the request IP's country
(MaxMind's GeoIP2 test database, tests/fixtures/geoip) against the blocked countries;
an address the database cannot place, or no database, is skipped and stated."""

from __future__ import annotations

from typing import Any

import pytest
from pytest_django.fixtures import Settings

from fraud.engine import Verdict
from fraud.models import Assessment, Decision, RuleConfig
from paymenter.principals import SystemPrincipal
from tests.factories import make_customer, make_invoice
from tests.fraud.helpers import BT_ADDRESS, GB_ADDRESS, GEOIP_TEST_DATABASE, Clock, assessor_at, start_context

pytestmark = [pytest.mark.fraud_rules, pytest.mark.django_db]


def _geography(assessment: Verdict) -> dict[str, Any]:
    stored = Assessment.objects.get(id=assessment.assessment_id)
    return next(result for result in stored.results if result["rule"] == "geography")


@pytest.fixture
def geoip(settings: Settings) -> None:
    settings.FRAUD_GEOIP_DATABASE = GEOIP_TEST_DATABASE


@pytest.fixture
def bhutan_blocked(system_principal: SystemPrincipal) -> None:
    RuleConfig.objects.filter(name="geography").update(config={"blocked_countries": ["BT", "KP"], "decision": "block"})


@pytest.mark.usefixtures("geoip", "bhutan_blocked")
def test_an_address_in_a_blocked_country_is_blocked_before_the_start(system_principal: SystemPrincipal) -> None:
    invoice = make_invoice(make_customer())
    assessment = assessor_at(Clock()).before_start(start_context(invoice, source_ip=BT_ADDRESS))

    assert assessment.decision == Decision.BLOCK
    assert assessment.reasons == ("geography: blocked country: ip country BT",)
    assert assessment.retry_after_seconds is None  # not a block that passes with time
    assert _geography(assessment)["inputs"]["ip_country"] == "BT"


@pytest.mark.usefixtures("geoip", "bhutan_blocked")
def test_an_address_in_another_country_is_allowed(system_principal: SystemPrincipal) -> None:
    invoice = make_invoice(make_customer())
    assessment = assessor_at(Clock()).before_start(start_context(invoice, source_ip=GB_ADDRESS))

    assert assessment.decision == Decision.ALLOW
    assert _geography(assessment)["inputs"] == {
        "billing_country": "AU",
        "ip_country": "GB",
        "blocked_countries": ["BT", "KP"],
    }


@pytest.mark.usefixtures("geoip")
@pytest.mark.parametrize(
    ("address", "skipped"),
    [
        ("10.1.2.3", "skipped: 10.1.2.3 is a private or reserved address"),
        ("127.0.0.1", "skipped: 127.0.0.1 is a private or reserved address"),
        ("fd00::1", "skipped: fd00::1 is a private or reserved address"),
        ("2606:4700::1", "skipped: 2606:4700::1 is not in the GeoIP database"),
        ("8.8.8.8", "skipped: 8.8.8.8 is not in the GeoIP database"),
        ("", "skipped: no source address"),
    ],
)
def test_addresses_the_database_cannot_place_are_skipped_and_stated(
    system_principal: SystemPrincipal, address: str, skipped: str
) -> None:
    invoice = make_invoice(make_customer())
    assessment = assessor_at(Clock()).before_start(start_context(invoice, source_ip=address))

    assert assessment.decision == Decision.ALLOW
    assert _geography(assessment)["inputs"]["ip_country"] == skipped


def test_without_a_database_the_ip_country_is_skipped_and_stated(
    system_principal: SystemPrincipal, settings: Settings
) -> None:
    settings.FRAUD_GEOIP_DATABASE = ""
    invoice = make_invoice(make_customer())
    assessment = assessor_at(Clock()).before_start(start_context(invoice, source_ip=BT_ADDRESS))

    assert _geography(assessment)["inputs"]["ip_country"] == (
        "skipped: no GeoIP database configured (FRAUD_GEOIP_DATABASE)"
    )


def test_an_unreadable_database_is_skipped_and_stated(
    system_principal: SystemPrincipal, settings: Settings, tmp_path: Any
) -> None:
    broken = tmp_path / "broken.mmdb"
    broken.write_bytes(b"not a database")
    settings.FRAUD_GEOIP_DATABASE = str(broken)
    invoice = make_invoice(make_customer())
    assessment = assessor_at(Clock()).before_start(start_context(invoice, source_ip=GB_ADDRESS))

    assert assessment.decision == Decision.ALLOW
    assert _geography(assessment)["inputs"]["ip_country"] == "skipped: the GeoIP database could not be read"


def test_a_customer_billed_in_a_blocked_country_is_blocked(system_principal: SystemPrincipal) -> None:
    invoice = make_invoice(make_customer(billing_country="KP"))
    assessment = assessor_at(Clock()).before_start(start_context(invoice))

    assert assessment.decision == Decision.BLOCK
    assert assessment.reasons == ("geography: blocked country: billing country KP",)
