"""Velocity is exact under concurrency: simultaneous attempts by one customer, each in its
own transaction on committed data, cannot together pass the limit (advisory locks
serialise the count and the insert)."""

from __future__ import annotations

import ipaddress
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections, transaction

from billing.models import Customer
from fraud.models import Assessment, Decision
from invoices.models import Invoice
from paymenter import rls
from paymenter.principals import SystemPrincipal
from tests.factories import make_customer, make_invoice
from tests.fraud.helpers import Clock, assessor_at, start_context

pytestmark = [pytest.mark.fraud_rules, pytest.mark.committed, pytest.mark.usefixtures("committed_db")]

PRINCIPAL = SystemPrincipal(label="test:fraud-concurrency")
THREADS = 6


def _simultaneous_starts(invoice: Invoice, clock: Clock, source_ip: str) -> list[Decision]:
    barrier = threading.Barrier(THREADS)

    def start() -> Decision:
        try:
            with rls.acting_as(PRINCIPAL), transaction.atomic():
                barrier.wait(timeout=30)
                return Decision(assessor_at(clock).before_start(start_context(invoice, source_ip=source_ip)).decision)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(lambda _: start(), range(THREADS)))


def _fresh_address() -> str:
    """Committed data stays: each run counts on an address no earlier run used."""
    return str(ipaddress.IPv6Address(int("20010db8" + uuid.uuid4().hex[:24], 16)))


def _customer_and_invoice() -> tuple[Customer, Invoice]:
    with rls.acting_as(PRINCIPAL):
        customer = make_customer()
        return customer, make_invoice(customer)


def test_simultaneous_attempts_let_exactly_the_limit_through() -> None:
    _, invoice = _customer_and_invoice()
    clock = Clock()

    decisions = _simultaneous_starts(invoice, clock, _fresh_address())

    assert sorted(decisions) == sorted([Decision.ALLOW] * 3 + [Decision.BLOCK] * (THREADS - 3))
    with rls.acting_as(PRINCIPAL):
        stored = Assessment.objects.filter(customer_id=invoice.customer_id, stage="before_start")
        assert stored.filter(decision="allow").count() == 3
        assert stored.filter(decision="block").count() == THREADS - 3


def test_simultaneous_fourth_attempts_none_passes() -> None:
    _, invoice = _customer_and_invoice()
    clock = Clock()
    with rls.acting_as(PRINCIPAL):
        for _ in range(3):
            with transaction.atomic():
                assert (
                    assessor_at(clock).before_start(start_context(invoice, source_ip=_fresh_address())).decision
                    == "allow"
                )

    decisions = _simultaneous_starts(invoice, clock, _fresh_address())

    assert decisions == [Decision.BLOCK] * THREADS
