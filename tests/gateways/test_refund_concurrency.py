"""Money going back under real concurrency (threads on committed data): two refund clicks
at once refund once; simultaneous reports of one dispute record it once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection

from gateways.errors import RefundExceedsRefundableError
from gateways.services import disputes_settle
from tests.gateways.test_disputes import SYSTEM, _card_paid, _dispute
from tests.gateways.test_disputes import _state as _dispute_state
from tests.gateways.test_refunds import TOTAL, _events, _paid, _refund, _staff_user, _state

pytestmark = pytest.mark.committed


@pytest.fixture(autouse=True)
def _bank_transfer_enabled(settings: Any) -> None:
    settings.BANK_TRANSFER_ACCOUNT_NUMBER = "12345678"
    settings.BANK_TRANSFER_BSB = "062-000"


def test_two_simultaneous_full_refunds_refund_once(committed_db: None) -> None:
    invoice, payment = _paid()
    users = [_staff_user(), _staff_user()]
    start = threading.Barrier(2)

    def click(user: User) -> str:
        start.wait()
        try:
            _refund(payment, TOTAL, user)
        except RefundExceedsRefundableError:
            return "refused"
        finally:
            connection.close()
        return "refunded"

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(click, users))

    assert outcomes == ["refunded", "refused"]
    state = _state(invoice)
    assert (state["refunded"], state["refunds"], len(state["credit_notes"])) == (TOTAL, [("succeeded", TOTAL)], 1)
    assert [t for t in _events(invoice) if t[0] == "o2s.callback"] == [("o2s.callback", "invoice.refunded")]


def test_simultaneous_reports_of_one_dispute_record_it_once(committed_db: None) -> None:
    invoice, payment = _card_paid()
    racers = 12
    start = threading.Barrier(racers)

    def report(_: int) -> bool:
        start.wait()
        try:
            settled = disputes_settle(principal=SYSTEM, reported=[_dispute(payment)], recorded_by="race")
            return settled[0].opened
        finally:
            connection.close()

    with ThreadPoolExecutor(racers) as pool:
        opened = list(pool.map(report, range(racers)))

    assert opened.count(True) == 1
    assert _dispute_state(invoice)["callbacks"] == ["invoice.disputed"]
