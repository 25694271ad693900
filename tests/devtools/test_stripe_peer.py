"""The local Stripe test peer, driven with the official SDK as the app drives Stripe.

No database: only the peer and localstripe (subprocesses of the ``stripe_peer`` fixture) and, for
webhooks, a small receiver thread. Waits poll with generous timeouts (localstripe sends its own
events a second after the fact), never sleep for a fixed time.
"""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
import requests
import stripe
from stripe.params.checkout import SessionCreateParams

from devtools.peer_process import REPO
from devtools.stripe_peer.harness import PaymentFailed, StripePeer

SECRET = "whsec_test_peer"
SUCCESS_URL = "http://app.test/billing/paid?session={CHECKOUT_SESSION_ID}"
WAIT_SECONDS = 20


T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], what: str) -> T:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out after {WAIT_SECONDS}s waiting for {what}")


def events_once(peer: StripePeer, event_type: str) -> list[dict[str, Any]]:
    """All the peer's events, once one of ``event_type`` is among them (localstripe's come late)."""

    def probe() -> list[dict[str, Any]] | None:
        events = peer.events()
        return events if any(e["type"] == event_type for e in events) else None

    return wait_for(probe, event_type)


@dataclasses.dataclass(frozen=True)
class Delivery:
    body: bytes
    signature: str | None


class Receiver:
    """The app's webhook endpoint, reduced to recording what arrives."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.deliveries.append(Delivery(body, self.headers.get("Stripe-Signature")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stripe/webhook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[stripe.Event]:
        """Each delivery verified as the app verifies it (raises on a bad signature)."""
        return [
            stripe.Webhook.construct_event(d.body, d.signature, SECRET, tolerance=300) for d in list(self.deliveries)
        ]

    def wait_for(self, event_type: str) -> stripe.Event:
        return wait_for(lambda: next((e for e in self.events() if e.type == event_type), None), event_type)


@pytest.fixture
def peer(stripe_peer: StripePeer) -> StripePeer:
    stripe_peer.reset()
    return stripe_peer


@pytest.fixture
def client(peer: StripePeer) -> stripe.StripeClient:
    return stripe.StripeClient(
        "sk_test_peer", base_addresses={"api": peer.api_base}, http_client=stripe.RequestsClient(timeout=10)
    )


@pytest.fixture
def receiver(peer: StripePeer) -> Iterator[Receiver]:
    receiver = Receiver()
    peer.configure(webhook_url=receiver.url, webhook_secret=SECRET)
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def session_params(three_d_secure: str = "any", **extra: Any) -> SessionCreateParams:
    params: SessionCreateParams = {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {"currency": "aud", "unit_amount": 1234, "product_data": {"name": "Invoice INV-0042"}},
                "quantity": 1,
            }
        ],
        "client_reference_id": "inv_42",
        "metadata": {"invoice": "INV-0042"},
        "payment_intent_data": {"metadata": {"invoice": "INV-0042"}},
        "payment_method_options": {"card": {"request_three_d_secure": three_d_secure}},
        "success_url": SUCCESS_URL,
        "cancel_url": "http://app.test/billing/cancelled",
    }
    params.update(extra)  # type: ignore[typeddict-item]
    return params


def paid_intent(client: stripe.StripeClient, peer: StripePeer, card: str, **extra: Any) -> stripe.PaymentIntent:
    session = client.v1.checkout.sessions.create(params=session_params(**extra))
    assert session.url is not None
    peer.pay(session.url, card_number=card)
    done = client.v1.checkout.sessions.retrieve(session.id)
    assert isinstance(done.payment_intent, str)
    return client.v1.payment_intents.retrieve(done.payment_intent, params={"expand": ["latest_charge"]})


def card_of(intent: stripe.PaymentIntent) -> Any:
    assert isinstance(intent.latest_charge, stripe.Charge)
    details = intent.latest_charge.payment_method_details
    assert details is not None
    return details.card


def test_checkout_with_3d_secure_end_to_end(client: stripe.StripeClient, peer: StripePeer) -> None:
    customer = client.v1.customers.create(params={"email": "billing@example.com", "name": "Example Pty Ltd"})
    params = session_params(customer=customer.id)

    session = client.v1.checkout.sessions.create(params=params, options={"idempotency_key": "invoice-42-attempt-1"})
    replay = client.v1.checkout.sessions.create(params=params, options={"idempotency_key": "invoice-42-attempt-1"})
    with pytest.raises(stripe.IdempotencyError):
        client.v1.checkout.sessions.create(
            params=session_params(customer=customer.id, client_reference_id="other"),
            options={"idempotency_key": "invoice-42-attempt-1"},
        )

    assert replay.id == session.id
    assert session.id.startswith("cs_test_")
    assert (session.status, session.payment_status, session.payment_intent) == ("open", "unpaid", None)
    assert (session.amount_total, session.amount_subtotal, session.currency) == (1234, 1234, "aud")
    assert session.customer == customer.id
    assert session.client_reference_id == "inv_42"
    assert session.metadata is not None
    assert session.metadata.to_dict() == {"invoice": "INV-0042"}
    assert session.url == peer.checkout_url(session.id)
    assert session.livemode is False

    location = peer.pay(session.url, card_number="4000002500003155", authenticate=True)

    assert location == SUCCESS_URL.replace("{CHECKOUT_SESSION_ID}", session.id)
    done = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent"]})
    assert (done.status, done.payment_status) == ("complete", "paid")
    assert isinstance(done.payment_intent, stripe.PaymentIntent)
    assert isinstance(done.payment_intent.latest_charge, str)  # not expanded: an id, as in Stripe
    intent = client.v1.payment_intents.retrieve(done.payment_intent.id, params={"expand": ["latest_charge"]})
    assert (intent.status, intent.amount, intent.amount_received, intent.currency) == ("succeeded", 1234, 1234, "aud")
    assert intent.customer == customer.id
    assert intent.metadata.to_dict() == {"invoice": "INV-0042"}
    card = card_of(intent)
    assert card.three_d_secure.result == "authenticated"
    assert card.three_d_secure.authentication_flow == "challenge"
    assert (card.checks.cvc_check, card.checks.address_postal_code_check, card.checks.address_line1_check) == (
        "pass",
        "pass",
        "pass",
    )
    assert (card.last4, card.brand, card.country, card.exp_year) == ("3155", "visa", "US", 2034)
    assert isinstance(intent.latest_charge, stripe.Charge)
    assert (intent.latest_charge.status, intent.latest_charge.amount_captured) == ("succeeded", 1234)


def test_latest_charge_expands_with_either_array_encoding(client: stripe.StripeClient, peer: StripePeer) -> None:
    intent = paid_intent(client, peer, "4242424242424242")
    headers = {"Authorization": "Bearer sk_test_peer"}
    url = f"{peer.api_base}/v1/payment_intents/{intent.id}"

    for query in ("expand[]=latest_charge", "expand[0]=latest_charge", ""):
        body = requests.get(f"{url}?{query}", headers=headers, timeout=10).json()

        assert body["object"] == "payment_intent"
        assert body["amount_received"] == 1234
        if query:
            assert body["latest_charge"]["payment_method_details"]["type"] == "card"
        else:
            assert body["latest_charge"] == intent.latest_charge.id  # type: ignore[union-attr]


def test_any_challenges_cards_localstripe_would_not(client: stripe.StripeClient, peer: StripePeer) -> None:
    """request_three_d_secure=any: Stripe challenges every card; automatic: only those that need it."""
    challenged = paid_intent(client, peer, "4242424242424242", three_d_secure="any")
    frictionless = paid_intent(client, peer, "4242424242424242", three_d_secure="automatic")

    assert card_of(challenged).three_d_secure.result == "authenticated"
    assert card_of(frictionless).three_d_secure is None
    assert challenged.status == frictionless.status == "succeeded"


@pytest.mark.parametrize(
    ("card", "check", "country"),
    [
        ("4000000000000101", "cvc_check", "US"),
        ("4000000000000036", "address_postal_code_check", "US"),
        ("4000000000000028", "address_line1_check", "US"),
        ("4000000360000006", None, "AU"),
    ],
)
def test_card_checks_and_country_follow_stripes_test_cards(
    client: stripe.StripeClient, peer: StripePeer, card: str, check: str | None, country: str
) -> None:
    intent = paid_intent(client, peer, card)

    details = card_of(intent)
    checks = {name: details.checks[name] for name in ("cvc_check", "address_postal_code_check", "address_line1_check")}
    assert checks == {name: "fail" if name == check else "pass" for name in checks}
    assert (details.country, details.last4, intent.status) == (country, card[-4:], "succeeded")


def test_declined_card_leaves_the_session_open(client: stripe.StripeClient, peer: StripePeer) -> None:
    session = client.v1.checkout.sessions.create(params=session_params(three_d_secure="automatic"))
    assert session.url is not None

    with pytest.raises(PaymentFailed, match="declined"):
        peer.pay(session.url, card_number="4000000000000002")

    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
    failed = wait_for(
        lambda: next((e for e in peer.events() if e["type"] == "payment_intent.payment_failed"), None),
        "localstripe's payment_intent.payment_failed",
    )
    error = failed["data"]["object"]["last_payment_error"]
    assert (error["code"], error["decline_code"], error["type"]) == ("card_declined", "generic_decline", "card_error")
    assert not [e for e in peer.events() if e["type"].startswith("checkout.session.")]


def test_failed_authentication_then_a_retry_on_the_same_session(client: stripe.StripeClient, peer: StripePeer) -> None:
    session = client.v1.checkout.sessions.create(params=session_params())
    assert session.url is not None

    with pytest.raises(PaymentFailed, match="authentication failed"):
        peer.pay(session.url, card_number="4000002500003155", authenticate=False)

    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
    (failed,) = [e for e in peer.events() if e["type"] == "payment_intent.payment_failed"]
    assert failed["data"]["object"]["last_payment_error"]["code"] == "payment_intent_authentication_failure"

    peer.pay(session.url, card_number="4242424242424242")

    assert client.v1.checkout.sessions.retrieve(session.id).status == "complete"


def test_webhooks_are_signed_for_the_app(client: stripe.StripeClient, peer: StripePeer, receiver: Receiver) -> None:
    session = client.v1.checkout.sessions.create(params=session_params())
    assert session.url is not None

    peer.pay(session.url)

    completed = receiver.wait_for("checkout.session.completed")
    succeeded = receiver.wait_for("payment_intent.succeeded")  # localstripe's, relayed by the peer
    assert completed.data.object["id"] == session.id
    assert completed.data.object["payment_status"] == "paid"
    assert completed.livemode is False
    assert completed.api_version == stripe.api_version
    assert succeeded.data.object["id"] == completed.data.object["payment_intent"]
    assert succeeded.data.object["amount_received"] == 1234
    assert isinstance(succeeded.data.object["latest_charge"], str)
    assert [e["id"] for e in peer.events()] == wait_for(
        lambda: [e.id for e in receiver.events()] if len(receiver.deliveries) == len(peer.events()) else None,
        "every event delivered",
    )
    delivery = receiver.deliveries[0]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(delivery.body, delivery.signature, "whsec_wrong", tolerance=300)


def test_hold_then_release_delivers_in_order(client: stripe.StripeClient, peer: StripePeer, receiver: Receiver) -> None:
    peer.configure(delivery="hold")
    session = client.v1.checkout.sessions.create(params=session_params())
    assert session.url is not None

    peer.pay(session.url)
    held = events_once(peer, "payment_intent.succeeded")

    assert receiver.deliveries == []  # held events never reach the delivery queue
    released = peer.release()
    assert released == [e["id"] for e in held]
    assert [e.id for e in receiver.events()] == released  # release delivers before it returns
    assert peer.release() == []


def test_drop_never_delivers(client: stripe.StripeClient, peer: StripePeer, receiver: Receiver) -> None:
    peer.configure(delivery="drop")
    session = client.v1.checkout.sessions.create(params=session_params())
    assert session.url is not None

    peer.pay(session.url)
    events_once(peer, "payment_intent.succeeded")

    assert peer.release() == []
    assert receiver.deliveries == []
    assert {e["type"] for e in peer.events()} >= {"checkout.session.completed", "payment_intent.succeeded"}


def test_expire(client: stripe.StripeClient, peer: StripePeer) -> None:
    session = client.v1.checkout.sessions.create(params=session_params())

    expired = client.v1.checkout.sessions.expire(session.id)

    assert (expired.status, expired.payment_status, expired.url) == ("expired", "unpaid", None)
    assert [e["type"] for e in peer.events()] == ["checkout.session.expired"]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.expire(session.id)
    page = requests.get(peer.checkout_url(session.id), timeout=10)
    assert "expired" in page.text
    assert 'id="pay-button"' not in page.text
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.checkout.sessions.retrieve("cs_test_nope")
    assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")


def test_refund_is_proxied_to_localstripe(client: stripe.StripeClient, peer: StripePeer) -> None:
    intent = paid_intent(client, peer, "4242424242424242")

    refund = client.v1.refunds.create(
        params={"payment_intent": intent.id, "amount": 234}, options={"idempotency_key": "r1"}
    )
    replay = client.v1.refunds.create(
        params={"payment_intent": intent.id, "amount": 234}, options={"idempotency_key": "r1"}
    )

    assert replay.id == refund.id  # localstripe ignores Idempotency-Key; the peer replays
    assert (refund.status, refund.amount, refund.currency) == ("succeeded", 234, "aud")
    assert isinstance(intent.latest_charge, stripe.Charge)
    assert refund.charge == intent.latest_charge.id
    charge = client.v1.charges.retrieve(intent.latest_charge.id)
    assert charge.amount_refunded == 234


def test_requests_are_validated_like_stripe(client: stripe.StripeClient, peer: StripePeer) -> None:
    refusals: list[tuple[dict[str, Any], str]] = [
        ({"success_url": "not a url"}, "success_url"),
        ({"customer": "cus_missing"}, "customer"),
        ({"payment_method_options": {"card": {"request_three_d_secure": "never"}}}, "payment_method_options[card]"),
        ({"surprise": "yes"}, "surprise"),
    ]
    for bad, param in refusals:
        with pytest.raises(stripe.InvalidRequestError) as refused:
            client.v1.checkout.sessions.create(params=session_params(**bad))
        assert (refused.value.http_status, refused.value.param) == (400, param)
    live = stripe.StripeClient("sk_live_nope", base_addresses={"api": peer.api_base})
    with pytest.raises(stripe.AuthenticationError):
        live.v1.customers.create()


def test_hosted_page_is_a_labelled_plain_form(client: stripe.StripeClient, peer: StripePeer) -> None:
    session = client.v1.checkout.sessions.create(params=session_params())
    assert session.url is not None

    page = requests.get(session.url, timeout=10)

    assert page.status_code == 200
    for expected in (
        "TEST DOUBLE",
        "no real money",
        "Invoice INV-0042",
        "12.34 AUD",
        'id="card-number"',
        'name="card_number" value="4000002500003155"',
        'id="pay-button"',
        'id="cancel-link" href="http://app.test/billing/cancelled"',
    ):
        assert expected in page.text
    assert "<script" not in page.text


def test_stripe_settings_point_the_app_at_the_peer(stripe_settings: StripePeer) -> None:
    from django.conf import settings  # noqa: PLC0415 - only this test needs Django

    assert stripe_settings.api_base == settings.STRIPE_API_BASE
    assert settings.STRIPE_SECRET_KEY.startswith("sk_test_")
    assert settings.STRIPE_WEBHOOK_SECRETS == [SECRET]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_launcher_listens_on_loopback_only_and_keeps_state_in_its_dir(tmp_path: Path) -> None:
    port = _free_port()
    command = [sys.executable, "-m", "devtools.localstripe_launcher", "--port", str(port), "--state-dir"]
    everywhere = "0.0.0.0"  # noqa: S104 - the launcher must refuse it
    refused = subprocess.run(  # noqa: S603 - sys.executable running our own module
        [*command, str(tmp_path), "--host", everywhere], cwd=REPO, capture_output=True, check=False
    )
    assert refused.returncode == 2
    assert b"loopback" in refused.stderr

    with (tmp_path / "log").open("wb") as log:
        launcher = subprocess.Popen(  # noqa: S603 - sys.executable running our own module
            [*command, str(tmp_path / "state"), "--host", "127.0.0.1"], cwd=REPO, stdout=log, stderr=log
        )
    try:
        url = f"http://127.0.0.1:{port}/v1/customers"
        auth = {"Authorization": "Bearer sk_test_launcher"}

        def created() -> str | None:
            try:
                customer_id: str = requests.post(url, headers=auth, data={"email": "x@example.com"}, timeout=5).json()[
                    "id"
                ]
            except requests.ConnectionError:
                return None
            return customer_id

        customer = wait_for(created, "localstripe to start")
        listening = [
            c for c in psutil.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN and c.laddr.port == port
        ]
        assert [c.laddr.ip for c in listening] == ["127.0.0.1"]
        others = [
            a.address
            for addresses in psutil.net_if_addrs().values()
            for a in addresses
            if a.family == socket.AF_INET and not a.address.startswith("127.")
        ]
        for address in others:
            with (
                pytest.raises((ConnectionRefusedError, TimeoutError)),
                socket.create_connection((address, port), timeout=5),
            ):
                pass
        state = (tmp_path / "state" / "localstripe.pickle").read_bytes()
        assert customer.encode() in state
        shared = Path("/tmp/localstripe.pickle")  # noqa: S108 - the path localstripe would use
        assert not shared.exists() or customer.encode() not in shared.read_bytes()
    finally:
        launcher.terminate()
        launcher.wait(timeout=10)
