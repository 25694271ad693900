"""Paying by card in a real headless Chromium, against the local Stripe peer.

A customer opens the ``pay_url``, presses "Pay by card", pays with a 3-D Secure card on the
peer's hosted checkout page (a test double), and is sent back to ``/payments/<id>/return/``,
which shows "Paid" only after the server-to-server confirmation: with the webhooks dropped
(they never come) and with them held and delivered after the customer saw "Paid" (they come
late, and change nothing: one payment, the invoice paid once).

Order matters (see ``headless_chromium``): the database work is done before Playwright starts
and the assertions on the database after the browser is closed; while the browser runs, the
test only speaks HTTP.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import ConsoleMessage, Page, Route

from audit.models import AuditEvent
from devtools.stripe_peer.harness import StripePeer
from gateways.models import Payment, PaymentAttempt, WebhookEvent
from gateways.services import webhook_event_process
from invoices.models import Invoice
from invoices.pay_links import pay_link_url
from paymenter import rls
from paymenter.principals import SystemPrincipal
from tests.browser.test_hosted_invoice_page import chromium_path, headless_chromium  # noqa: F401 - a fixture
from tests.factories import make_customer, make_invoice

pytestmark = pytest.mark.committed

SYSTEM = SystemPrincipal(label="test:browser-pay-by-card")
CARD = "4000002500003155"  # 3-D Secure: the peer challenges it
WEBHOOK_SECRET = "whsec_test_peer"  # what ``stripe_settings`` tells the app to accept
RETURN_PATH = re.compile(r"/payments/([0-9a-f-]{36})/return/$")  # also run by Chromium: JavaScript syntax
TIMEOUT_MS = 20_000
WAIT_SECONDS = 20


@dataclass
class Journey:
    """What the browser saw, kept for the assertions after it is closed."""

    checkout_url: str = ""
    checkout_banner: str = ""
    return_url: str = ""
    result: str = ""
    way_back: str = ""  # the peer's 303 Location after 3-D Secure
    hosted_before_return: str = ""  # the invoice page, fetched before the browser followed it
    console: list[str] = field(default_factory=list)


def _pay_url(invoice: Invoice, live_url: str) -> str:
    url = pay_link_url(invoice=invoice)
    path = url.split("/pay/", 1)[1]
    return f"{live_url}/pay/{path}"


def _pay_in_browser(page: Page, pay_url: str, peer: StripePeer, tmp_path: Path) -> Journey:
    journey = Journey()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("console", lambda message: _log_console(journey, message))
    page.on("pageerror", lambda error: journey.console.append(f"pageerror: {error}"))

    def hold_the_way_back(route: Route) -> None:
        # The peer has taken the payment and answers 303 to the app's return URL. Before the
        # browser follows it, the invoice page (what anyone holding the link sees) must not
        # say paid: only the return's server-to-server check (or a webhook) may settle it.
        # (Playwright does not route requests that follow a redirect, so the 303 is caught here.)
        if route.request.method != "POST":
            route.continue_()
            return
        answer = route.fetch(max_redirects=0)
        journey.way_back = answer.headers.get("location", "")
        journey.hosted_before_return = requests.get(pay_url, timeout=10).text
        route.fulfill(response=answer)

    page.route(re.compile(re.escape(peer.api_base) + r"/checkout/cs_test_\w+/3ds$"), hold_the_way_back)
    page.goto(pay_url)
    pay_button = page.locator("#pay-by-card")
    assert pay_button.inner_text() == "Pay by card"
    with page.expect_response(re.compile(r"/start/stripe/$")) as started:
        pay_button.click()
    start = started.value
    assert start.status == 303, (
        f"Pay by card answered {start.status}, not 303 to the checkout page; the browser sent "
        f"Origin: {start.request.all_headers().get('origin')!r} (a 403 with Origin 'null' is Django's CSRF "
        "origin check refusing a page served with Referrer-Policy: no-referrer; portal/views.py _private)"
    )
    page.wait_for_url(re.compile(re.escape(peer.api_base) + r"/checkout/cs_test_\w+$"))
    journey.checkout_url = page.url
    journey.checkout_banner = page.inner_text("#test-double")
    page.fill("#card-number", CARD)
    with page.expect_navigation(url=re.compile(r"/3ds$")):
        page.click("#pay-button")
    with page.expect_navigation(url=RETURN_PATH):
        page.get_by_role("button", name="Complete authentication").click()
    journey.return_url = page.url
    journey.result = page.inner_text("#payment-result")
    page.screenshot(path=str(tmp_path / "payment-return.png"), full_page=True)
    return journey


def _log_console(journey: Journey, message: ConsoleMessage) -> None:
    if message.type in ("error", "warning"):
        journey.console.append(f"{message.type}: {message.text}")


def _wait_for_event(peer: StripePeer, event_type: str) -> list[dict[str, Any]]:
    """The peer's events once ``event_type`` is among them (localstripe's arrive a second late)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        events = peer.events()
        if any(event["type"] == event_type for event in events):
            return events
        time.sleep(0.1)
    raise AssertionError(f"no {event_type} at the peer after {WAIT_SECONDS}s: {peer.events()}")


def _settled(invoice: Invoice) -> dict[str, Any]:
    with rls.acting_as(SYSTEM):
        stored = Invoice.objects.get(pk=invoice.pk)
        return {
            "status": stored.status,
            "paid": stored.amount_paid_minor,
            "payments": list(Payment.objects.filter(invoice=invoice).values_list("status", "transaction_id")),
            "paid_audits": AuditEvent.objects.filter(object_id=str(invoice.id), action="invoice.paid").count(),
            "attempts": list(PaymentAttempt.objects.filter(invoice=invoice).values_list("id", "status")),
        }


@pytest.fixture
def app_url(live_url: str, settings: Any) -> str:
    """The live server, also as ``PUBLIC_BASE_URL``: pay links and the return URLs given to
    the peer point at it."""
    settings.PUBLIC_BASE_URL = live_url
    return live_url


@pytest.mark.parametrize("webhooks", ["never", "late"])
def test_pay_by_card_in_chromium_shows_paid_after_the_server_to_server_confirmation(
    chromium_path: str,  # noqa: F811 - the fixture imported above
    app_url: str,
    stripe_settings: StripePeer,
    tmp_path: Path,
    webhooks: str,
) -> None:
    peer, live_url = stripe_settings, app_url
    peer.configure(delivery="drop" if webhooks == "never" else "hold")
    with rls.acting_as(SYSTEM):
        invoice = make_invoice(make_customer(name="Sandy Bay Hosting"), lines=[("VPS small", 2, 2000)])
    pay_url = _pay_url(invoice, live_url)

    with headless_chromium() as browser:
        context = browser.new_context()
        try:
            journey = _pay_in_browser(context.new_page(), pay_url, peer, tmp_path)
        finally:
            context.close()

    csp_refusals = [line for line in journey.console if "Content Security Policy" in line]
    assert not csp_refusals, csp_refusals
    assert journey.checkout_url.startswith(f"{peer.api_base}/checkout/cs_test_")
    assert "TEST DOUBLE" in journey.checkout_banner
    assert "no real money" in journey.checkout_banner
    assert journey.result == "Paid", journey.console
    assert journey.way_back == journey.return_url  # the browser followed the peer's redirect
    assert "<dd>Open</dd>" in journey.hosted_before_return
    assert 'id="invoice-paid"' not in journey.hosted_before_return
    assert 'id="pay-by-card"' in journey.hosted_before_return
    match = RETURN_PATH.search(journey.return_url)
    assert match is not None
    assert journey.return_url.startswith(live_url)

    settled = _settled(invoice)
    assert settled["status"] == "paid"
    assert settled["paid"] == invoice.total_minor
    assert [status for status, _ in settled["payments"]] == ["applied"]
    assert settled["payments"][0][1].startswith("pi_")
    assert settled["paid_audits"] == 1
    assert [(str(pk), status) for pk, status in settled["attempts"]] == [(match[1], "succeeded")]

    if webhooks == "never":
        with rls.acting_as(SYSTEM):
            ids = [event["id"] for event in peer.events()]
            assert ids  # there were events; none reached the app
            assert not WebhookEvent.objects.filter(gateway="stripe", event_id__in=ids).exists()
        return

    # late: the webhooks, held until now, reach the app after the customer saw "Paid"
    events = _wait_for_event(peer, "payment_intent.succeeded")
    assert {"checkout.session.completed", "payment_intent.succeeded"} <= {event["type"] for event in events}
    peer.configure(webhook_url=f"{live_url}/webhooks/stripe/", webhook_secret=WEBHOOK_SECRET)
    released = peer.release()
    assert set(released) == {event["id"] for event in events}
    with rls.acting_as(SYSTEM):
        stored = list(
            WebhookEvent.objects.filter(gateway="stripe", event_id__in=released)
            .order_by("received_at")
            .values_list("pk", "event_type", "status")
        )
        outcomes = [webhook_event_process(webhook_event_id=pk) for pk, _, status in stored if status == "received"]
    assert sorted(event_type for _, event_type, _ in stored) == sorted(e["type"] for e in events)
    assert outcomes, "no webhook was left to process"
    assert set(outcomes) <= {"processed", "ignored"}, outcomes
    assert _settled(invoice) == settled  # still one payment, the invoice paid once
