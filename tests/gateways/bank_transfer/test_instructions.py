"""Paying by bank transfer: the instructions a payer sees (account, BSB, the reference to
quote, the amount due), offered only when settings name our account and something is due;
and the adapter, which speaks the gateway interface without a gateway behind it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from django.template.loader import render_to_string
from django.test import Client
from django.urls import reverse

from gateways.bank_transfer.adapter import BankTransferGateway
from gateways.bank_transfer.instructions import BankTransferInstructions, bank_transfer_instructions
from gateways.bank_transfer.references import reference_print
from gateways.base import (
    GatewayCode,
    GatewayRefundStatus,
    GatewayRequestError,
    PaymentRequest,
    WebhookRejectedError,
    WebhookRejectedReason,
)
from gateways.errors import GatewayDisabledError
from gateways.models import PaymentAttempt
from gateways.registry import gateway_for, gateways_enabled
from invoices.models import Invoice
from invoices.pay_links import pay_link_token
from paymenter import rls
from paymenter.money import Money
from paymenter.principals import SystemPrincipal
from tests.factories import make_customer, make_invoice, pay_invoice
from tests.gateways.bank_transfer.helpers import invoice_now, reference_of


@pytest.fixture
def bank_settings(settings: Any) -> Any:
    settings.BANK_TRANSFER_ACCOUNT_NAME = "Tasmanian Cloud Pty Ltd"
    settings.BANK_TRANSFER_BANK_NAME = "Commonwealth Bank"
    settings.BANK_TRANSFER_BSB = "062000"
    settings.BANK_TRANSFER_ACCOUNT_NUMBER = "12345678"
    return settings


def _invoice() -> Invoice:
    return make_invoice(make_customer(), lines=[("Managed hosting, 1 month", 1, 10000)])


# --- instructions --------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_instructions_name_our_account_the_reference_and_what_is_due(bank_settings: Any) -> None:
    invoice = _invoice()
    pay_invoice(invoice, 4000)
    invoice = invoice_now(invoice)

    instructions = bank_transfer_instructions(invoice)

    assert instructions == BankTransferInstructions(
        account_name="Tasmanian Cloud Pty Ltd",
        bank_name="Commonwealth Bank",
        bsb="062-000",
        account_number="12345678",
        reference=reference_print(reference_of(invoice)),
        amount=Money(invoice.total_minor - 4000, "AUD"),
    )
    assert instructions.reference_compact == reference_of(invoice)


@pytest.mark.django_db
def test_no_instructions_without_an_account_or_with_nothing_due(bank_settings: Any) -> None:
    invoice = _invoice()
    draft = make_invoice(make_customer(), issue=False)
    paid = _invoice()
    pay_invoice(paid)

    assert bank_transfer_instructions(draft) is None
    assert bank_transfer_instructions(invoice_now(paid)) is None
    bank_settings.BANK_TRANSFER_ACCOUNT_NUMBER = ""
    assert bank_transfer_instructions(invoice) is None


@pytest.mark.django_db
def test_the_partial_shows_the_reference_prominently_and_says_to_quote_it_exactly(bank_settings: Any) -> None:
    invoice = _invoice()
    instructions = bank_transfer_instructions(invoice)
    assert instructions is not None

    html = render_to_string("portal/_bank_transfer.html", {"bank_transfer": instructions})

    assert "Pay by bank transfer" in html
    assert f'<strong id="bank-transfer-reference">{instructions.reference}</strong>' in html
    assert "<strong>exactly</strong>" in html
    for shown in ("Tasmanian Cloud Pty Ltd", "Commonwealth Bank", "062-000", "12345678", "AUD 110.00"):
        assert shown in html
    assert render_to_string("portal/_bank_transfer.html", {"bank_transfer": None}).strip() == ""


@pytest.mark.django_db
def test_the_hosted_page_shows_how_to_pay_by_bank_transfer(bank_settings: Any) -> None:
    invoice = _invoice()
    url = reverse("portal:hosted-invoice", kwargs={"token": pay_link_token(invoice=invoice)})

    page = Client().get(url)

    assert page.status_code == 200
    assert reference_print(reference_of(invoice)) in page.content.decode()
    bank_settings.BANK_TRANSFER_ACCOUNT_NUMBER = ""
    assert b"Pay by bank transfer" not in Client().get(url).content


@pytest.mark.django_db
def test_nobody_starts_a_bank_transfer_at_a_gateway_page_and_nothing_is_written(bank_settings: Any) -> None:
    """Bank transfer has no page to send the payer to: a crafted Pay POST for it is refused
    (404 ``gateway_disabled``, the invoice page again) and opens no attempt."""
    invoice = _invoice()
    token = pay_link_token(invoice=invoice)
    start = reverse("portal:payment-start", kwargs={"token": token, "gateway": "bank_transfer"})

    page = Client().post(start)

    assert page.status_code == 404
    assert b"Pay by bank transfer" in page.content
    with rls.acting_as(SystemPrincipal(label="test:bank-start")):
        assert not PaymentAttempt.objects.filter(invoice_id=invoice.id).exists()


# --- the adapter ------------------------------------------------------------------------------


def test_bank_transfer_is_enabled_by_the_account_number_and_offered_last(settings: Any) -> None:
    settings.STRIPE_SECRET_KEY = "sk_test_x"
    settings.PAYPAL_CLIENT_ID = settings.PAYPAL_CLIENT_SECRET = "x"
    settings.BANK_TRANSFER_ACCOUNT_NUMBER = ""
    assert GatewayCode.BANK_TRANSFER not in gateways_enabled()
    with pytest.raises(GatewayDisabledError):
        gateway_for("bank_transfer")

    settings.BANK_TRANSFER_ACCOUNT_NUMBER = "12345678"

    assert gateways_enabled() == [GatewayCode.STRIPE, GatewayCode.PAYPAL, GatewayCode.BANK_TRANSFER]
    assert isinstance(gateway_for("bank_transfer"), BankTransferGateway)


def test_payment_start_answers_instructions_and_sends_nobody_anywhere(bank_settings: Any) -> None:
    gateway = BankTransferGateway()
    request = PaymentRequest(
        attempt_id=uuid.uuid4(),
        invoice_id=uuid.uuid4(),
        invoice_number="INV-2026-000034",
        customer_id=uuid.uuid4(),
        amount=Money(11000, "AUD"),
        description="Tasmanian Cloud invoice INV-2026-000034",
        success_url="https://billing.example/return",
        cancel_url="https://billing.example/cancel",
        idempotency_key="paymenter-attempt-x",
    )

    started = gateway.payment_start(request)

    assert (started.session_id, started.redirect_url, gateway.checkout_origin()) == ("", "", "")
    assert dict(started.instructions) == {
        "account_name": "Tasmanian Cloud Pty Ltd",
        "bank_name": "Commonwealth Bank",
        "bsb": "062-000",
        "account_number": "12345678",
        "reference": reference_print(started.instructions["reference"].replace(" ", "")),
        "amount": "AUD 110.00",
    }
    assert started.instructions["reference"].replace(" ", "").endswith("INV2026000034")


def test_the_adapter_has_no_webhooks_nothing_to_fetch_or_capture_and_no_report() -> None:
    gateway = BankTransferGateway()

    for verify in (lambda: gateway.webhook_verify(body=b"{}", headers={}), lambda: gateway.webhook_parse(b"{}")):
        with pytest.raises(WebhookRejectedError) as refused:
            verify()
        assert refused.value.reason is WebhookRejectedReason.GATEWAY_DISABLED
    with pytest.raises(GatewayRequestError):
        gateway.payment_capture(session_id="", idempotency_key="k")
    assert gateway.payment_fetch(session_id="x", transaction_id="y") is None
    assert gateway.refunds_fetch(transaction_id="bank-manual:x") == []
    assert gateway.disputes_fetch(transaction_id="bank-manual:x") == []
    assert gateway.fraud_warning_fetch(warning_id="w") is None
    since = datetime(2026, 3, 5, tzinfo=UTC)
    assert gateway.payments_report(since=since, until=since) is None
    gateway.session_expire(session_id="")  # nothing to expire, nothing raised


def test_a_refund_is_recorded_as_paid_out_by_staff_with_the_requests_id() -> None:
    request_id = uuid.UUID("5b8f4c52-7d1e-4f0a-9a57-0c3f8e2d1a6b")

    refund = BankTransferGateway().refund(
        transaction_id="bank-manual:abc", amount=Money(2500, "AUD"), idempotency_key="k", request_id=request_id
    )

    assert (refund.refund_id, refund.status, refund.amount, refund.request_id, refund.transaction_id) == (
        f"bank-payout:{request_id}",
        GatewayRefundStatus.SUCCEEDED,
        Money(2500, "AUD"),
        request_id,
        "bank-manual:abc",
    )
