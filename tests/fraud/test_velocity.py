"""Velocity: at most 3 new payment attempts per customer, and per source address, in any
10 minutes; the 4th is blocked with when to retry, and the window slides. The clock is
passed in (no sleeps); the concurrency test is in test_velocity_concurrency.py."""

from __future__ import annotations

import pytest

from audit.actions import AuditAction
from audit.models import AuditEvent
from fraud.models import Assessment, Decision
from paymenter.principals import SystemPrincipal
from tests.factories import make_customer, make_invoice
from tests.fraud.helpers import Clock, assessor_at, start_context

pytestmark = [pytest.mark.fraud_rules, pytest.mark.django_db]


def test_three_attempts_pass_the_fourth_is_blocked_with_when_to_retry(system_principal: SystemPrincipal) -> None:
    invoice = make_invoice(make_customer())
    clock = Clock()
    assessor = assessor_at(clock)

    decisions = []
    for _ in range(3):
        decisions.append(assessor.before_start(start_context(invoice)).decision)
        clock.advance(60)
    fourth = assessor.before_start(start_context(invoice))

    assert decisions == [Decision.ALLOW] * 3
    assert fourth.decision == Decision.BLOCK
    # the first attempt (at T0) leaves the window at T0 + 600 s; it is now T0 + 180 s
    assert fourth.retry_after_seconds == 420
    assert fourth.reasons == (
        "velocity: 3 payment attempts in 10 minutes already made by this customer and this source address; "
        "retry after 420 seconds",
    )
    stored = Assessment.objects.get(id=fourth.assessment_id)
    assert stored.decision == "block"
    velocity = next(result for result in stored.results if result["rule"] == "velocity")
    assert velocity["inputs"]["customer_attempts_in_window"] == 3
    assert velocity["inputs"]["retry_after_seconds"] == 420
    event = AuditEvent.objects.get(action=AuditAction.FRAUD_ASSESSED, payload__assessment_id=str(fourth.assessment_id))
    assert event.payload["decision"] == "block"
    assert event.customer_id == invoice.customer_id


def test_the_window_slides_and_blocked_starts_do_not_count(system_principal: SystemPrincipal) -> None:
    invoice = make_invoice(make_customer())
    clock = Clock()
    assessor = assessor_at(clock)
    for _ in range(3):
        assessor.before_start(start_context(invoice))
        clock.advance(100)  # attempts at T0, T0+100, T0+200; now T0+300
    assert assessor.before_start(start_context(invoice)).decision == Decision.BLOCK

    clock.advance(299)  # T0+599: the first attempt is still in the window
    assert assessor.before_start(start_context(invoice)).decision == Decision.BLOCK
    clock.advance(1)  # T0+600: it has left it (the window is (now - 600 s, now])
    assert assessor.before_start(start_context(invoice)).decision == Decision.ALLOW
    # that attempt (T0+600) fills the window again with T0+100 and T0+200
    blocked = assessor.before_start(start_context(invoice))
    assert blocked.decision == Decision.BLOCK
    assert blocked.retry_after_seconds == 100


def test_the_limit_is_per_source_address_across_customers(system_principal: SystemPrincipal) -> None:
    clock = Clock()
    assessor = assessor_at(clock)
    invoices = [make_invoice(make_customer()) for _ in range(4)]

    results = [assessor.before_start(start_context(invoice, source_ip="198.51.100.20")) for invoice in invoices]
    elsewhere = assessor.before_start(start_context(invoices[3], source_ip="198.51.100.21"))

    assert [result.decision for result in results] == [Decision.ALLOW] * 3 + [Decision.BLOCK]
    assert (
        results[3]
        .reasons[0]
        .startswith("velocity: 3 payment attempts in 10 minutes already made by this source address;")
    )
    assert elsewhere.decision == Decision.ALLOW


def test_the_limit_is_per_customer_across_addresses(system_principal: SystemPrincipal) -> None:
    invoice = make_invoice(make_customer())
    assessor = assessor_at(Clock())
    for n in range(3):
        assert assessor.before_start(start_context(invoice, source_ip=f"198.51.100.{n + 1}")).decision == Decision.ALLOW
    fourth = assessor.before_start(start_context(invoice, source_ip="198.51.100.9"))
    assert fourth.decision == Decision.BLOCK
    assert "by this customer;" in fourth.reasons[0]


@pytest.mark.parametrize("source_ip", ["", "not-an-address"])
def test_no_usable_source_address_is_stated_and_the_customer_limit_still_counts(
    system_principal: SystemPrincipal, source_ip: str
) -> None:
    invoice = make_invoice(make_customer())
    assessor = assessor_at(Clock())
    first = assessor.before_start(start_context(invoice, source_ip=source_ip))

    stored = Assessment.objects.get(id=first.assessment_id)
    velocity = next(result for result in stored.results if result["rule"] == "velocity")
    assert first.decision == Decision.ALLOW
    assert stored.source_ip is None
    assert velocity["inputs"]["source_address"] == "skipped: no usable source address"
    assert velocity["inputs"]["customer_attempts_in_window"] == 0


@pytest.mark.parametrize("shared", ["127.0.0.1", "10.0.0.5", "192.168.1.10", "::1", "fd00::1"])
def test_a_loopback_or_private_address_is_not_counted_as_one_customers(
    system_principal: SystemPrincipal, shared: str
) -> None:
    """Behind such an address stand many customers (this host, or a proxy not seen through):
    counting them as one would block them all. The per-customer limit still holds."""
    assessor = assessor_at(Clock())
    customers = [make_customer() for _ in range(4)]
    results = [assessor.before_start(start_context(make_invoice(c), source_ip=shared)) for c in customers]

    assert [result.decision for result in results] == [Decision.ALLOW] * 4
    stored = Assessment.objects.get(id=results[3].assessment_id)
    velocity = next(result for result in stored.results if result["rule"] == "velocity")
    assert velocity["inputs"]["source_address"] == f"skipped: {shared} is a loopback or private-network address"
