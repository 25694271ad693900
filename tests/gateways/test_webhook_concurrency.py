"""Concurrent and duplicate deliveries, proven with real concurrent requests and threads on
committed data: one payment, one audit "paid" event, one O2S callback and one receipt,
however many times and however concurrently Stripe (or an attacker replaying it) delivers."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from django.db import connections

from audit.models import AuditEvent
from devtools.stripe_peer.harness import StripePeer
from events.delivery import outbox_deliver_message
from gateways.models import Payment, PaymentAttempt, WebhookEvent
from gateways.services import payment_attempt_confirm, webhook_event_process
from invoices.models import Invoice
from invoices.pay_links import pay_link_url
from paymenter import rls
from paymenter.models import OutboxMessage
from paymenter.principals import SystemPrincipal
from tests.factories import make_customer, make_invoice
from tests.stripe_events import WEBHOOK_URL, signed

pytestmark = pytest.mark.committed
READER = SystemPrincipal(label="test:webhook-concurrency")
CONCURRENT_DELIVERIES = 50


def _paid_at_stripe(live_url: str, peer: StripePeer) -> tuple[Invoice, PaymentAttempt]:
    """An invoice whose payment Stripe took, with every webhook still held by the peer."""
    invoice = make_invoice(make_customer())
    page = requests.Session()
    url = pay_link_url(invoice=invoice).replace("http://127.0.0.1:8000", live_url)
    form = page.get(url, timeout=10)
    token = form.cookies["csrftoken"]
    started = page.post(
        url + "start/stripe/",
        data={"csrfmiddlewaretoken": token},
        headers={"Referer": url},
        allow_redirects=False,
        timeout=30,
    )
    assert started.status_code == 303, started.text
    peer.pay(started.headers["Location"])
    with rls.acting_as(READER):
        attempt = PaymentAttempt.objects.get(invoice=invoice)
    return invoice, attempt


def _effects(invoice: Invoice) -> dict[str, Any]:
    with rls.acting_as(READER):
        messages = Counter(
            OutboxMessage.objects.filter(payload__data__invoice_id=str(invoice.id)).values_list(
                "topic", "payload__type"
            )
        )
        return {
            "status": Invoice.objects.get(pk=invoice.pk).status,
            "payments": Payment.objects.filter(invoice=invoice).count(),
            "audit_paid": AuditEvent.objects.filter(object_id=str(invoice.id), action="invoice.paid").count(),
            "messages": dict(messages),
        }


ONCE = {
    "status": "paid",
    "payments": 1,
    "audit_paid": 1,
    "messages": {("o2s.callback", "invoice.paid"): 1, ("portal.receipt", "invoice.paid"): 1},
}


def test_fifty_simultaneous_deliveries_of_one_event_pay_once(
    live_url_concurrent: str, stripe_settings: StripePeer, settings: Any
) -> None:
    live_url = live_url_concurrent
    settings.PUBLIC_BASE_URL = live_url
    stripe_settings.configure(delivery="hold")
    invoice, attempt = _paid_at_stripe(live_url, stripe_settings)
    completed = next(
        event
        for event in stripe_settings.events()
        if event["type"] == "checkout.session.completed" and event["data"]["object"]["id"] == attempt.gateway_session_id
    )
    body, header = signed(completed)
    barrier = threading.Barrier(CONCURRENT_DELIVERIES)

    def deliver(_: int) -> int:
        barrier.wait()
        response = requests.post(
            live_url + WEBHOOK_URL,
            data=body,
            headers={"Stripe-Signature": header, "Content-Type": "application/json"},
            timeout=60,
        )
        return response.status_code

    with ThreadPoolExecutor(CONCURRENT_DELIVERIES) as pool:
        statuses = list(pool.map(deliver, range(CONCURRENT_DELIVERIES)))
    assert statuses == [200] * CONCURRENT_DELIVERIES
    with rls.acting_as(READER):
        stored = WebhookEvent.objects.filter(event_id=completed["id"])
        assert stored.count() == 1
        stored_pk = stored.get().pk
        [message] = OutboxMessage.objects.filter(payload__webhook_event_id=str(stored_pk))

    # The worker, a second worker racing it, the customer's return page and the staff's
    # re-process all settle the same payment at once.
    racers = 12
    start = threading.Barrier(racers)

    def race(index: int) -> None:
        start.wait()
        try:
            if index % 3 == 0:
                outbox_deliver_message(message_id=message.id)
            elif index % 3 == 1:
                webhook_event_process(webhook_event_id=stored_pk)
            else:
                payment_attempt_confirm(principal=READER, attempt=attempt, recorded_by="test-race")
        finally:
            connections.close_all()

    with rls.acting_as(READER), ThreadPoolExecutor(racers) as pool:
        list(pool.map(race, range(racers)))
    assert _effects(invoice) == ONCE

    # a replay re-signed with a fresh timestamp, and localstripe's own signed webhooks
    replay_body, replay_header = signed(completed, timestamp=int(time.time()))
    assert requests.post(
        live_url + WEBHOOK_URL, data=replay_body, headers={"Stripe-Signature": replay_header}, timeout=10
    ).json() == {"received": True, "duplicate": True}
    assert _effects(invoice) == ONCE


def test_localstripes_own_signed_webhooks_pass_verification(
    live_url: str, stripe_settings: StripePeer, settings: Any
) -> None:
    settings.PUBLIC_BASE_URL = live_url
    stripe_settings.configure(webhook_url=live_url + WEBHOOK_URL, webhook_secret="whsec_test_peer", delivery="deliver")
    invoice, _ = _paid_at_stripe(live_url, stripe_settings)
    deadline = time.monotonic() + 20  # localstripe waits a second before it sends
    types: set[str] = set()
    while time.monotonic() < deadline and "payment_intent.succeeded" not in types:
        with rls.acting_as(READER):
            types = set(WebhookEvent.objects.values_list("event_type", flat=True).filter(received_at__isnull=False))
        time.sleep(0.2)
    assert {"payment_intent.succeeded", "checkout.session.completed"} <= types
    with rls.acting_as(READER):
        pending = list(WebhookEvent.objects.filter(status="received").values_list("pk", flat=True))
    for pk in pending:
        webhook_event_process(webhook_event_id=pk)
    assert _effects(invoice) == ONCE


def test_simultaneous_clicks_on_pay_open_one_attempt_and_one_session(
    live_url_concurrent: str, stripe_settings: StripePeer, settings: Any
) -> None:
    settings.PUBLIC_BASE_URL = live_url_concurrent
    invoice = make_invoice(make_customer())
    url = pay_link_url(invoice=invoice).replace("http://127.0.0.1:8000", live_url_concurrent)
    browser = requests.Session()
    token = browser.get(url, timeout=10).cookies["csrftoken"]
    clicks = 10
    barrier = threading.Barrier(clicks)

    def click(_: int) -> str:
        barrier.wait()
        response = browser.post(
            url + "start/stripe/",
            data={"csrfmiddlewaretoken": token},
            headers={"Referer": url},
            allow_redirects=False,
            timeout=60,
        )
        assert response.status_code == 303, response.text
        return response.headers["Location"]

    with ThreadPoolExecutor(clicks) as pool:
        locations = set(pool.map(click, range(clicks)))
    assert len(locations) == 1
    with rls.acting_as(READER):
        assert PaymentAttempt.objects.filter(invoice=invoice).count() == 1
        assert AuditEvent.objects.filter(object_id=str(invoice.id), action="payment.attempt_started").count() == 1
