"""The daily summary: per gateway, payments recorded here vs. reported by the gateway over a
day, differences flagged for staff. The bank transfer side (no gateway report); the Stripe
side runs against the local peer in tests/gateways/test_stripe_refunds_disputes.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from gateways.models import DailySummary
from gateways.services.summaries import payment_daily_summaries
from paymenter import rls
from paymenter.principals import SystemPrincipal
from tests.factories import make_customer, make_invoice, pay_invoice

pytestmark = pytest.mark.django_db

SYSTEM = SystemPrincipal(label="test:summary")


@pytest.fixture(autouse=True)
def _only_bank_transfer(settings: Any) -> None:
    settings.STRIPE_SECRET_KEY = ""
    settings.PAYPAL_CLIENT_ID = ""
    settings.BANK_TRANSFER_ACCOUNT_NUMBER = "12345678"


def test_bank_transfers_are_summarised_without_a_gateway_report_and_a_rerun_replaces_the_day() -> None:
    invoice = make_invoice(make_customer())
    pay_invoice(invoice, 1000)
    pay_invoice(invoice, 190)
    period_end = timezone.now() + timedelta(hours=1)

    [summary] = payment_daily_summaries(period_end=period_end)
    pay_invoice(invoice, 2000)
    [again] = payment_daily_summaries(period_end=period_end)

    assert summary.pk == again.pk
    assert (again.gateway, again.reported_count, again.differences) == ("bank_transfer", None, [])
    assert again.recorded_count == summary.recorded_count + 1
    assert again.recorded_minor["AUD"] == summary.recorded_minor["AUD"] + 2000
    with rls.acting_as(SYSTEM):
        assert (
            DailySummary.objects.filter(gateway="bank_transfer", period_start=period_end - timedelta(days=1)).count()
            == 1
        )


def test_a_day_outside_the_payments_records_nothing_for_it() -> None:
    pay_invoice(make_invoice(make_customer()), 1000)

    [summary] = payment_daily_summaries(period_end=timezone.now() - timedelta(days=2))

    assert (summary.recorded_count, summary.recorded_minor) == (0, {})


@pytest.mark.parametrize("role", ["admin", "billing", "support"])
def test_staff_read_the_summaries(role: str) -> None:
    payment_daily_summaries(period_end=timezone.now() + timedelta(hours=1))
    user = User.objects.create_user(username=f"{role}-summary", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)

    assert client.get(reverse("admin:gateways_dailysummary_changelist")).status_code == 200
