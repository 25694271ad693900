"""The PayPal adapter against the local fake, through PayPal's own SDK over HTTP: orders,
server-side capture, refunds, disputes and reversals, the transaction report, the cached
OAuth token, and the conversion of amounts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pytest_django.fixtures import Settings

from devtools.paypal_peer.harness import PaypalPeer
from devtools.peer_process import free_port
from gateways.base import (
    GatewayCode,
    GatewayDisputeStatus,
    GatewayPaymentStatus,
    GatewayRefundStatus,
    GatewayRequestError,
    GatewayUnavailableError,
    PaymentMethod,
    PaymentRequest,
)
from gateways.paypal.adapter import PaypalGateway, money_from_paypal, money_to_paypal
from gateways.paypal.client import PaypalRequestError, paypal_clients_forget
from gateways.registry import gateway_for, gateways_enabled
from paymenter.money import Money

INVOICE = uuid.UUID("00000000-0000-4000-8000-00000000a001")
ATTEMPT = uuid.UUID("00000000-0000-4000-8000-00000000b001")
REFUND_REQUEST = uuid.UUID("00000000-0000-4000-8000-00000000c001")


AMOUNT = Money(12_345, "AUD")


def _request(amount: Money = AMOUNT, *, key: str = "paymenter-attempt-1") -> PaymentRequest:
    return PaymentRequest(
        attempt_id=ATTEMPT,
        invoice_id=INVOICE,
        invoice_number="INV-2026-000001",
        customer_id=uuid.UUID("00000000-0000-4000-8000-00000000d001"),
        amount=amount,
        description="Invoice INV-2026-000001",
        success_url="https://billing.example.test/pay/return/?attempt=1",
        cancel_url="https://billing.example.test/pay/cancel/",
        idempotency_key=key,
    )


def _captured(peer: PaypalPeer, amount: Money = AMOUNT, *, key: str = "attempt-1") -> tuple[str, str]:
    """An approved and captured order: (order id, capture id)."""
    gateway = PaypalGateway()
    started = gateway.payment_start(_request(amount, key=key))
    peer.approve(started.session_id)
    payment = gateway.payment_capture(session_id=started.session_id, idempotency_key="capture-1")
    return started.session_id, payment.transaction_id


@pytest.mark.parametrize(
    ("amount", "paypal"),
    [
        (Money(12_345, "AUD"), "123.45"),
        (Money(5, "AUD"), "0.05"),
        (Money(100, "USD"), "1.00"),
        (Money(0, "EUR"), "0.00"),
        (Money(1_234, "JPY"), "1234"),
        (Money(0, "JPY"), "0"),
    ],
)
def test_amounts_become_paypal_decimal_strings_and_back_exactly(amount: Money, paypal: str) -> None:
    assert money_to_paypal(amount) == {"currency_code": amount.currency, "value": paypal}
    assert money_from_paypal({"currency_code": amount.currency, "value": paypal}) == amount


@pytest.mark.parametrize(
    "amount",
    [
        {"currency_code": "JPY", "value": "1234.5"},  # a fraction of a yen
        {"currency_code": "AUD", "value": "1.005"},  # a fraction of a cent
        {"currency_code": "XXX", "value": "1.00"},
        {"currency_code": "AUD", "value": "1e3"},
        {"currency_code": "AUD", "value": "-1.00"},
        {"currency_code": "AUD", "value": 1.0},
        None,
    ],
)
def test_a_paypal_amount_that_is_not_exact_in_minor_units_is_refused(amount: object) -> None:
    with pytest.raises(GatewayRequestError):
        money_from_paypal(amount)


def test_paypal_is_enabled_by_its_client_credentials(settings: Settings) -> None:
    settings.STRIPE_SECRET_KEY = "sk_test_x"
    settings.PAYPAL_CLIENT_ID, settings.PAYPAL_CLIENT_SECRET = "id", ""
    assert GatewayCode.PAYPAL not in gateways_enabled()
    settings.PAYPAL_CLIENT_SECRET = "secret"
    assert gateways_enabled()[:2] == [GatewayCode.STRIPE, GatewayCode.PAYPAL]
    assert isinstance(gateway_for("paypal"), PaypalGateway)


@pytest.mark.parametrize(
    ("api_base", "override", "origin"),
    [
        ("https://api-m.paypal.com", "", "https://www.paypal.com"),
        ("https://api-m.sandbox.paypal.com", "", "https://www.sandbox.paypal.com"),
        ("http://127.0.0.1:8431", "", "http://127.0.0.1:8431"),
        ("https://api-m.paypal.com", "https://www.example.test", "https://www.example.test"),
    ],
)
def test_the_checkout_origin_follows_the_api_base(
    settings: Settings, api_base: str, override: str, origin: str
) -> None:
    settings.PAYPAL_API_BASE, settings.PAYPAL_CHECKOUT_ORIGIN = api_base, override
    assert PaypalGateway().checkout_origin() == origin


def test_an_order_is_created_for_the_invoice_and_attempt_and_awaits_the_buyer(paypal_settings: PaypalPeer) -> None:
    gateway = PaypalGateway()
    started = gateway.payment_start(_request())
    assert started.redirect_url == f"{paypal_settings.api_base}/checkoutnow?token={started.session_id}"
    payment = gateway.payment_fetch(session_id=started.session_id)
    assert payment is not None
    assert (payment.status, payment.capturable, payment.session_closed) == (GatewayPaymentStatus.PENDING, False, False)
    assert (payment.invoice_id, payment.attempt_id, payment.session_id) == (INVOICE, ATTEMPT, started.session_id)
    assert (payment.amount, payment.method, payment.transaction_id) == (Money(12_345, "AUD"), PaymentMethod.PAYPAL, "")
    assert payment.gateway_status == "order:PAYER_ACTION_REQUIRED"


def test_the_same_request_id_returns_the_same_order(paypal_settings: PaypalPeer) -> None:
    gateway = PaypalGateway()
    first = gateway.payment_start(_request(key="paymenter-attempt-same"))
    again = gateway.payment_start(_request(key="paymenter-attempt-same"))
    assert again.session_id == first.session_id
    assert paypal_settings.stats()["orders"] == 1


def test_a_yen_order_is_sent_without_decimals(paypal_settings: PaypalPeer) -> None:
    gateway = PaypalGateway()
    started = gateway.payment_start(_request(Money(5_000, "JPY")))
    payment = gateway.payment_fetch(session_id=started.session_id)
    assert payment is not None
    assert payment.amount == Money(5_000, "JPY")


def test_an_approved_order_is_capturable_and_its_capture_succeeds_once(paypal_settings: PaypalPeer) -> None:
    gateway = PaypalGateway()
    started = gateway.payment_start(_request())
    paypal_settings.approve(started.session_id)
    approved = gateway.payment_fetch(session_id=started.session_id)
    assert approved is not None
    assert (approved.status, approved.capturable, approved.amount) == (
        GatewayPaymentStatus.PENDING,
        True,
        Money(12_345, "AUD"),
    )
    captured = gateway.payment_capture(session_id=started.session_id, idempotency_key="capture-a")
    assert (captured.status, captured.capturable, captured.session_closed) == (
        GatewayPaymentStatus.SUCCEEDED,
        False,
        True,
    )
    assert (captured.amount, captured.invoice_id, captured.attempt_id) == (Money(12_345, "AUD"), INVOICE, ATTEMPT)
    assert captured.transaction_id
    assert captured.gateway_status == "COMPLETED"
    # a retry with the same request id, and a second capture with another: the same payment
    assert gateway.payment_capture(session_id=started.session_id, idempotency_key="capture-a") == captured
    assert gateway.payment_capture(session_id=started.session_id, idempotency_key="capture-b") == captured
    assert gateway.payment_fetch(transaction_id=captured.transaction_id) == captured
    assert gateway.payment_fetch(session_id=started.session_id, transaction_id=captured.transaction_id) == captured


def test_an_order_the_buyer_did_not_approve_cannot_be_captured(paypal_settings: PaypalPeer) -> None:
    gateway = PaypalGateway()
    started = gateway.payment_start(_request())
    with pytest.raises(PaypalRequestError) as refused:
        gateway.payment_capture(session_id=started.session_id, idempotency_key="capture-early")
    assert (refused.value.status, refused.value.issue) == (422, "ORDER_NOT_APPROVED")
    payment = gateway.payment_fetch(session_id=started.session_id)
    assert payment is not None
    assert payment.status is GatewayPaymentStatus.PENDING


def test_a_pending_capture_is_pending_until_paypal_completes_or_denies_it(paypal_settings: PaypalPeer) -> None:
    paypal_settings.configure(capture_status="PENDING")
    gateway = PaypalGateway()
    order_id, capture_id = _captured(paypal_settings)
    pending = gateway.payment_fetch(transaction_id=capture_id)
    assert pending is not None
    assert (pending.status, pending.transaction_id, pending.session_id, pending.failure_reason) == (
        GatewayPaymentStatus.PENDING,
        capture_id,
        order_id,
        "PENDING_REVIEW",
    )
    paypal_settings.set_capture_status(capture_id, "DECLINED")
    denied = gateway.payment_fetch(session_id=order_id)
    assert denied is not None
    assert (denied.status, denied.session_closed, denied.gateway_status) == (
        GatewayPaymentStatus.FAILED,
        True,
        "DECLINED",
    )


def test_a_partial_refund_carries_our_refund_id_and_is_fetched_back(paypal_settings: PaypalPeer) -> None:
    gateway = PaypalGateway()
    _, capture_id = _captured(paypal_settings)
    refund = gateway.refund(
        transaction_id=capture_id, amount=Money(2_345, "AUD"), idempotency_key="refund-1", request_id=REFUND_REQUEST
    )
    assert (refund.gateway, refund.transaction_id, refund.status, refund.amount, refund.request_id) == (
        GatewayCode.PAYPAL,
        capture_id,
        GatewayRefundStatus.SUCCEEDED,
        Money(2_345, "AUD"),
        REFUND_REQUEST,
    )
    again = gateway.refund(
        transaction_id=capture_id, amount=Money(2_345, "AUD"), idempotency_key="refund-1", request_id=REFUND_REQUEST
    )
    assert again.refund_id == refund.refund_id
    assert gateway.refunds_fetch(refund_id=refund.refund_id) == [refund]
    assert gateway.refunds_fetch(transaction_id=capture_id) == []  # PayPal cannot list them
    captured = gateway.payment_fetch(transaction_id=capture_id)
    assert captured is not None
    assert (captured.status, captured.gateway_status) == (GatewayPaymentStatus.SUCCEEDED, "PARTIALLY_REFUNDED")


def test_a_refund_of_more_than_remains_is_refused_and_refunds_nothing(paypal_settings: PaypalPeer) -> None:
    gateway = PaypalGateway()
    _, capture_id = _captured(paypal_settings)
    gateway.refund(
        transaction_id=capture_id, amount=Money(10_000, "AUD"), idempotency_key="refund-a", request_id=uuid.uuid4()
    )
    with pytest.raises(PaypalRequestError) as refused:
        gateway.refund(
            transaction_id=capture_id, amount=Money(2_346, "AUD"), idempotency_key="refund-b", request_id=uuid.uuid4()
        )
    assert refused.value.issue == "REFUND_AMOUNT_EXCEEDED"
    refunds = [event for event in paypal_settings.events() if event["event_type"] == "PAYMENT.CAPTURE.REFUNDED"]
    assert [event["resource"]["amount"]["value"] for event in refunds] == ["100.00"]


def test_a_dashboard_refund_has_no_request_id(paypal_settings: PaypalPeer) -> None:
    gateway = PaypalGateway()
    _, capture_id = _captured(paypal_settings)
    made = paypal_settings.refund_in_dashboard(capture_id)
    (refund,) = gateway.refunds_fetch(refund_id=made["id"])
    assert (refund.transaction_id, refund.amount, refund.request_id) == (capture_id, Money(12_345, "AUD"), None)


def test_a_dispute_is_open_until_paypal_resolves_it(paypal_settings: PaypalPeer) -> None:
    gateway = PaypalGateway()
    _, capture_id = _captured(paypal_settings)
    opened = paypal_settings.open_dispute(capture_id, reason="UNAUTHORISED", value="100.00")
    (dispute,) = gateway.disputes_fetch(dispute_id=opened["dispute_id"])
    assert (dispute.dispute_id, dispute.transaction_id, dispute.status, dispute.amount, dispute.reason) == (
        opened["dispute_id"],
        capture_id,
        GatewayDisputeStatus.OPEN,
        Money(10_000, "AUD"),
        "UNAUTHORISED",
    )
    assert dispute.evidence_due_by is not None
    assert dispute.gateway_status == "WAITING_FOR_SELLER_RESPONSE"
    paypal_settings.resolve_dispute(opened["dispute_id"], "RESOLVED_BUYER_FAVOUR")
    (lost,) = gateway.disputes_fetch(transaction_id=capture_id)
    assert (lost.status, lost.gateway_status) == (GatewayDisputeStatus.LOST, "RESOLVED:RESOLVED_BUYER_FAVOUR")


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        ("RESOLVED_SELLER_FAVOUR", GatewayDisputeStatus.WON),
        ("CANCELED_BY_BUYER", GatewayDisputeStatus.WON),
        ("DENIED", GatewayDisputeStatus.WON),
        ("RESOLVED_WITH_PAYOUT", GatewayDisputeStatus.WON),
        ("ACCEPTED", GatewayDisputeStatus.LOST),
        ("NONE", GatewayDisputeStatus.OPEN),  # an outcome we cannot read: staff decide
    ],
)
def test_each_dispute_outcome_maps_to_won_lost_or_open(
    paypal_settings: PaypalPeer, outcome: str, status: GatewayDisputeStatus
) -> None:
    _, capture_id = _captured(paypal_settings)
    opened = paypal_settings.open_dispute(capture_id)
    paypal_settings.resolve_dispute(opened["dispute_id"], outcome)
    (dispute,) = PaypalGateway().disputes_fetch(dispute_id=opened["dispute_id"])
    assert dispute.status is status


def test_a_reversed_capture_is_a_lost_dispute_of_its_own(paypal_settings: PaypalPeer) -> None:
    gateway = PaypalGateway()
    _, capture_id = _captured(paypal_settings)
    assert gateway.disputes_fetch(transaction_id=capture_id) == []
    paypal_settings.set_capture_status(capture_id, "REVERSED")
    (reversal,) = gateway.disputes_fetch(transaction_id=capture_id)
    assert (reversal.dispute_id, reversal.status, reversal.reason, reversal.amount) == (
        f"reversal:{capture_id}",
        GatewayDisputeStatus.LOST,
        "reversal",
        Money(12_345, "AUD"),
    )
    assert gateway.disputes_fetch(dispute_id=f"reversal:{capture_id}") == [reversal]


def test_the_report_lists_the_payments_received_in_the_window(paypal_settings: PaypalPeer) -> None:
    paypal_settings.configure(clock="2026-03-01T10:00:00Z")
    gateway = PaypalGateway()
    _, first = _captured(paypal_settings, Money(12_345, "AUD"))
    paypal_settings.configure(clock="2026-03-02T10:00:00Z")  # the next day: outside the window
    _captured(paypal_settings, Money(500, "AUD"), key="attempt-2")
    paypal_settings.refund_in_dashboard(first, value="1.00")  # a refund is no payment
    reported = gateway.payments_report(
        since=datetime(2026, 3, 1, tzinfo=UTC), until=datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    )
    assert reported is not None
    assert [(p.transaction_id, p.status, p.amount, p.attempt_id) for p in reported] == [
        (first, GatewayPaymentStatus.SUCCEEDED, Money(12_345, "AUD"), ATTEMPT)
    ]


def test_the_token_is_fetched_once_and_shared_through_redis(paypal_settings: PaypalPeer) -> None:
    gateway = PaypalGateway()
    order_id, capture_id = _captured(paypal_settings)  # create, capture, fetch: SDK calls
    assert gateway.disputes_fetch(transaction_id=capture_id) == []  # a requests call, and the SDK's
    assert paypal_settings.token_requests() == 1
    paypal_clients_forget()  # another process: nothing in common with this one but Redis
    other = PaypalGateway()
    payment = other.payment_fetch(session_id=order_id)
    assert payment is not None
    assert payment.transaction_id == capture_id
    assert other.disputes_fetch(transaction_id=capture_id) == []
    assert paypal_settings.token_requests() == 1


def test_a_revoked_token_is_replaced_and_the_call_tried_again(paypal_settings: PaypalPeer) -> None:
    gateway = PaypalGateway()
    started = gateway.payment_start(_request())
    paypal_settings.revoke_tokens()
    payment = gateway.payment_fetch(session_id=started.session_id)
    assert payment is not None
    assert payment.session_id == started.session_id
    assert paypal_settings.token_requests() == 2


def test_wrong_client_credentials_are_a_refusal(paypal_settings: PaypalPeer, settings: Settings) -> None:
    settings.PAYPAL_CLIENT_SECRET = "not-the-secret"
    with pytest.raises(PaypalRequestError) as refused:
        PaypalGateway().payment_start(_request())
    assert (refused.value.status, refused.value.issue) == (401, "invalid_client")


def test_an_unknown_order_is_a_refusal(paypal_settings: PaypalPeer) -> None:
    with pytest.raises(PaypalRequestError) as refused:
        PaypalGateway().payment_fetch(session_id="NOSUCHORDER0000")
    assert (refused.value.status, refused.value.issue) == (404, "INVALID_RESOURCE_ID")


def test_an_unreachable_paypal_is_unavailable(paypal_settings: PaypalPeer, settings: Settings) -> None:
    settings.PAYPAL_API_BASE = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(GatewayUnavailableError):
        PaypalGateway().payment_start(_request())
    with pytest.raises(GatewayUnavailableError):
        PaypalGateway().disputes_fetch(dispute_id="PP-D-1001")


def test_ids_from_outside_never_reach_a_url_path_unchecked(paypal_settings: PaypalPeer) -> None:
    gateway = PaypalGateway()
    for bad in ("../../v1/oauth2/token", "ABC/capture", "A B"):
        with pytest.raises(GatewayRequestError):
            gateway.payment_fetch(session_id=bad)
        with pytest.raises(GatewayRequestError):
            gateway.disputes_fetch(dispute_id=bad)
    assert gateway.fraud_warning_fetch(warning_id="anything") is None
    gateway.session_expire(session_id="ANYORDER")  # nothing to do at PayPal
