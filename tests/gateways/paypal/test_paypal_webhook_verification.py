"""``/webhooks/paypal/``: only deliveries signed by PayPal's certificate, for our webhook id,
recent and well-formed, are stored, each once. Everything else is a 400 with its code and
nothing written; a certificate URL off https paypal.com is refused without any connection
being made; a certificate that cannot be fetched is a 503 (PayPal retries)."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from django.test import Client
from django_redis import get_redis_connection
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pytest_django.fixtures import Settings

from audit.models import AuditEvent
from devtools.paypal_peer.harness import PaypalPeer
from devtools.paypal_peer.signing import signed_headers, transmission_time
from devtools.peer_process import free_port
from gateways.base import (
    GatewayCode,
    GatewayEventKind,
    PaymentRequest,
    WebhookRejectedError,
    WebhookRejectedReason,
)
from gateways.models import PaypalCertificate, WebhookEvent
from gateways.paypal.adapter import PaypalGateway
from gateways.paypal.certificates import certificate_url_check
from gateways.paypal.webhooks import paypal_event_parse, paypal_webhook_verify
from paymenter import refusals, rls
from paymenter.models import OutboxMessage
from paymenter.money import Money
from paymenter.principals import SystemPrincipal
from tests.gateways.paypal import samples
from tests.paypal_peer_fixtures import WEBHOOK_ID, PaypalPKI, make_pki, recording_server, signed_delivery

pytestmark = pytest.mark.django_db
READER = SystemPrincipal(label="test:paypal-webhooks")
NOTHING = {"inbox": 0, "outbox": 0, "audit": 0}


@pytest.fixture(autouse=True)
def _window(monkeypatch: pytest.MonkeyPatch) -> None:
    # every refusal of a test in one refusal window, whatever the wall clock says
    monkeypatch.setattr(refusals, "clock", lambda: 1_800_000_010.0)
    get_redis_connection("default").flushdb()


def _post(body: bytes, headers: dict[str, str]) -> Any:
    return samples.post_delivery(body, headers)


def _written() -> dict[str, int]:
    with rls.acting_as(READER):
        return {
            "inbox": WebhookEvent.objects.count(),
            "outbox": OutboxMessage.objects.count(),
            # the certificate the fixture seeded is audited (a trust decision); deliveries write none
            "audit": AuditEvent.objects.exclude(action="paypal.certificate_seeded").count(),
        }


def _code(response: Any) -> str:
    return str(response.json()["error"]["code"])


def _ago(seconds: int) -> str:
    return transmission_time(datetime.fromtimestamp(time.time() - seconds, tz=UTC))


def _cache_directly(pki: PaypalPKI) -> None:
    """A certificate in the cache that would not be stored today (cached before it expired,
    or under other trust anchors): checked again at every use all the same."""
    leaf = x509.load_pem_x509_certificates(pki.chain_pem.encode())[0]
    with rls.acting_as(READER):
        PaypalCertificate.objects.update_or_create(
            url=pki.cert_url,
            defaults={"pem": pki.chain_pem, "not_after": leaf.not_valid_after_utc, "source": "fetched"},
        )


class CountingListener:
    """A TCP listener on 127.0.0.1 that accepts and closes every connection, and counts them
    (``count()`` stops it and also counts what is still in the backlog: no timing involved)."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            if select.select([self._socket], [], [], 0.02)[0]:
                self._accept_one()

    def _accept_one(self) -> bool:
        try:
            connection, _ = self._socket.accept()
        except BlockingIOError:
            return False
        connection.close()
        self._accepted += 1
        return True

    def count(self) -> int:
        self._stop.set()
        self._thread.join()
        self._socket.setblocking(False)
        while self._accept_one():
            pass
        self._socket.close()
        return self._accepted


@pytest.fixture
def listener(monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingListener]:
    """The counting listener, also as the outbound proxy: whatever host a certificate fetch
    would go to, its connection would arrive here (and no DNS is asked)."""
    counting = CountingListener()
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, counting.url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield counting
    with contextlib.suppress(OSError):
        counting.count()


def test_a_signed_delivery_is_stored_once_with_one_outbox_message(paypal_certificate: PaypalPKI) -> None:
    body, headers = signed_delivery(samples.load("payment_capture_completed"), paypal_certificate)
    response = _post(body, headers)
    assert (response.status_code, response.json()) == (200, {"received": True, "duplicate": False})
    with rls.acting_as(READER):
        stored = WebhookEvent.objects.get()
        message = OutboxMessage.objects.get()
    assert (stored.gateway, stored.event_id, stored.event_type, stored.object_id, stored.status) == (
        "paypal",
        "WH-2CL46544TB770421K-5VB92446WP7345818",
        "PAYMENT.CAPTURE.COMPLETED",
        samples.CAPTURE_ID,
        "received",
    )
    assert str(stored.body).encode() == body  # exactly what was signed
    assert stored.signed_at is not None
    assert (message.topic, message.payload["webhook_event_id"]) == ("gateways.webhook_event", str(stored.pk))
    assert _written()["audit"] == 0


def test_a_duplicate_and_a_resend_with_a_new_transmission_change_nothing(paypal_certificate: PaypalPKI) -> None:
    event = samples.load("checkout_order_approved")
    body, headers = signed_delivery(event, paypal_certificate, sent_at=_ago(100))
    assert _post(body, headers).status_code == 200
    before = _written()
    again = _post(body, headers)
    resent = _post(*signed_delivery(event, paypal_certificate))  # PayPal's resend: a new transmission
    assert [again.json()["duplicate"], resent.json()["duplicate"]] == [True, True]
    assert _written() == before == {"inbox": 1, "outbox": 1, "audit": 0}


def test_the_certificate_is_taken_from_the_cache_without_any_connection(
    paypal_certificate: PaypalPKI, listener: CountingListener
) -> None:
    body, headers = signed_delivery(samples.load("customer_dispute_created"), paypal_certificate)
    assert _post(body, headers).status_code == 200
    assert listener.count() == 0


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("tampered_body", "webhook_signature_invalid"),
        ("another_webhook_id", "webhook_signature_invalid"),
        ("stale", "webhook_timestamp_stale"),
        ("future", "webhook_timestamp_future"),
        ("another_key", "webhook_signature_invalid"),
        ("missing_signature", "webhook_signature_missing"),
        ("missing_cert_url", "webhook_signature_missing"),
        ("another_algorithm", "webhook_signature_invalid"),
        ("signature_not_base64", "webhook_signature_invalid"),
        ("time_not_a_time", "webhook_signature_invalid"),
        ("signed_not_json", "webhook_body_malformed"),
        ("signed_not_an_event", "webhook_body_malformed"),
        ("signed_id_with_a_nul", "webhook_body_malformed"),
    ],
)
def test_a_delivery_that_is_not_provably_from_paypal_is_refused_and_nothing_is_written(
    paypal_certificate: PaypalPKI, case: str, code: str
) -> None:
    event = samples.load("payment_capture_completed")
    body, headers = signed_delivery(event, paypal_certificate)
    if case == "tampered_body":
        body = body.replace(b'"123.45"', b'"1.45"', 1)
    elif case == "another_webhook_id":  # genuine, but for another subscription than ours
        body, headers = signed_delivery(event, paypal_certificate, webhook_id="WH-ID-SOMEONE-ELSE")
    elif case == "stale":
        body, headers = signed_delivery(event, paypal_certificate, sent_at=_ago(301))
    elif case == "future":
        body, headers = signed_delivery(event, paypal_certificate, sent_at=_ago(-3600))
    elif case == "another_key":  # signed by a key that is not the named certificate's
        other = make_pki(cert_url=paypal_certificate.cert_url)
        body, headers = signed_delivery(event, other)
    elif case == "missing_signature":
        del headers["PAYPAL-TRANSMISSION-SIG"]
    elif case == "missing_cert_url":
        del headers["PAYPAL-CERT-URL"]
    elif case == "another_algorithm":
        headers["PAYPAL-AUTH-ALGO"] = "SHA1withRSA"
    elif case == "signature_not_base64":
        headers["PAYPAL-TRANSMISSION-SIG"] = "not base64!"
    elif case == "time_not_a_time":
        headers["PAYPAL-TRANSMISSION-TIME"] = "yesterday"
    elif case == "signed_not_json":
        body, headers = _resigned(b"{not json", paypal_certificate)
    elif case == "signed_not_an_event":
        body, headers = _resigned(json.dumps({"id": "not-an-event", "resource": {}}).encode(), paypal_certificate)
    elif case == "signed_id_with_a_nul":
        body, headers = signed_delivery(dict(event, id="WH-1\u0000X"), paypal_certificate)
    response = _post(body, headers)
    assert (response.status_code, _code(response)) == (400, code)
    assert _written() == NOTHING


def _resigned(body: bytes, pki: PaypalPKI) -> tuple[bytes, dict[str, str]]:
    """Raw bytes (not an event) signed as PayPal would sign them."""
    return body, signed_headers(body, webhook_id=WEBHOOK_ID, private_key_pem=pki.key_pem, cert_url=pki.cert_url)


@pytest.mark.parametrize(
    ("case", "made"),
    [
        ("another_ca", {"root_name": "Another Root CA"}),
        ("expired", {"leaf_from": datetime(2020, 1, 1, tzinfo=UTC), "leaf_until": datetime(2021, 1, 1, tzinfo=UTC)}),
        (
            "not_yet_valid",
            {"leaf_from": datetime(2039, 1, 1, tzinfo=UTC), "leaf_until": datetime(2039, 6, 1, tzinfo=UTC)},
        ),
        ("not_a_paypal_name", {"leaf_name": "messageverificationcerts.example.com"}),
    ],
)
def test_a_cached_certificate_that_does_not_check_out_is_refused(
    paypal_certificate: PaypalPKI, settings: Settings, tmp_path: Path, case: str, made: dict[str, Any]
) -> None:
    pki = make_pki(**made)
    if case != "another_ca":  # trusted root: only the leaf itself is wrong
        settings.PAYPAL_WEBHOOK_CA_FILE = str(pki.write_root(tmp_path))
    _cache_directly(pki)
    response = _post(*signed_delivery(samples.load("payment_capture_completed"), pki))
    assert (response.status_code, _code(response)) == (400, "webhook_certificate_invalid")
    assert _written() == NOTHING


REFUSED_URLS = [
    "http://127.0.0.1:{port}/cert",
    "https://127.0.0.1:{port}/cert",
    "https://api.paypal.com.evil.test:{port}/",
    "https://user@api.paypal.com@127.0.0.1:{port}/",
    "https://api.paypal.com@127.0.0.1:{port}/v1/notifications/certs/CERT-1",
    "https://127.0.0.1:{port}\\@api.paypal.com/",
    "https://127.0.0.1:{port}/#.paypal.com",
    "https://127.0.0.1:{port}/?.paypal.com",
    "http://api.paypal.com/v1/notifications/certs/CERT-1",
    "https://api.paypal.com:{port}/v1/notifications/certs/CERT-1",
    "https://evilpaypal.com/v1/notifications/certs/CERT-1",
    "https://api.paypal.com./v1/notifications/certs/CERT-1",
    "https://api.paypal.com/v1/notifications/certs/CERT-1 ",
    "https://[::ffff:127.0.0.1]:{port}/cert",
    "ftp://api.paypal.com/v1/notifications/certs/CERT-1",
]


@pytest.mark.parametrize("template", REFUSED_URLS)
def test_a_certificate_url_off_https_paypal_com_is_refused_without_any_connection(
    paypal_certificate: PaypalPKI, listener: CountingListener, template: str
) -> None:
    url = template.format(port=listener.port)
    response = _post(*signed_delivery(samples.load("payment_capture_completed"), paypal_certificate, cert_url=url))
    assert (response.status_code, _code(response)) == (400, "webhook_certificate_url_refused")
    assert _written() == NOTHING
    assert listener.count() == 0


def test_an_uncached_paypal_certificate_that_cannot_be_fetched_is_a_503(
    paypal_certificate: PaypalPKI, listener: CountingListener
) -> None:
    url = "https://api.paypal.com/v1/notifications/certs/CERT-not-cached-here"
    response = _post(*signed_delivery(samples.load("payment_capture_completed"), paypal_certificate, cert_url=url))
    assert (response.status_code, _code(response), response["Retry-After"]) == (503, "gateway_unavailable", "60")
    assert _written() == NOTHING
    assert listener.count() == 1  # the one fetch, through the proxy: the listener closed it
    with rls.acting_as(READER):
        assert not PaypalCertificate.objects.filter(url=url).exists()


def test_an_oversized_body_is_refused(paypal_certificate: PaypalPKI, settings: Settings) -> None:
    settings.WEBHOOK_MAX_BODY_BYTES = 1024
    event = samples.load("payment_capture_completed", padding="x" * 2000)
    body, headers = signed_delivery(event, paypal_certificate)
    response = _post(body, headers)
    assert (response.status_code, _code(response)) == (400, "webhook_body_too_large")
    with pytest.raises(WebhookRejectedError) as refused:
        paypal_webhook_verify(body=body, headers=headers)
    assert refused.value.reason is WebhookRejectedReason.BODY_TOO_LARGE
    assert _written() == NOTHING


def test_without_our_webhook_id_no_delivery_is_ours(paypal_certificate: PaypalPKI, settings: Settings) -> None:
    settings.PAYPAL_WEBHOOK_ID = ""
    response = _post(*signed_delivery(samples.load("payment_capture_completed"), paypal_certificate))
    assert (response.status_code, _code(response)) == (400, "webhook_id_mismatch")
    assert _written() == NOTHING


def test_a_disabled_gateway_stores_nothing(paypal_certificate: PaypalPKI, settings: Settings) -> None:
    settings.PAYPAL_CLIENT_SECRET = ""
    response = _post(*signed_delivery(samples.load("payment_capture_completed"), paypal_certificate))
    assert (response.status_code, _code(response)) == (400, "webhook_gateway_disabled")
    assert _written() == NOTHING


def test_get_is_not_allowed() -> None:
    assert Client().get(samples.WEBHOOK_URL).status_code == 405


@pytest.fixture
def delivered(paypal_certificate: PaypalPKI, paypal_settings: PaypalPeer) -> Iterator[tuple[bytes, dict[str, str]]]:
    """A CHECKOUT.ORDER.APPROVED the fake signed and delivered (to a local receiver)."""
    with recording_server() as server:
        paypal_settings.configure(webhook_url=server.url, delivery="hold")
        started = PaypalGateway().payment_start(
            PaymentRequest(
                attempt_id=uuid.uuid4(),
                invoice_id=uuid.uuid4(),
                invoice_number="INV-1",
                customer_id=uuid.uuid4(),
                amount=Money(1_000, "AUD"),
                description="Invoice INV-1",
                success_url="https://billing.example.test/return/",
                cancel_url="https://billing.example.test/cancel/",
                idempotency_key="delivered-1",
            )
        )
        paypal_settings.approve(started.session_id)
        assert [item["status"] for item in paypal_settings.release()] == [200]
        (delivery,) = server.received
        yield delivery


def test_the_fakes_delivery_verifies_offline(delivered: tuple[bytes, dict[str, str]]) -> None:
    body, headers = delivered
    assert _post(body, headers).status_code == 200
    assert _written()["inbox"] == 1


def test_api_verification_asks_paypal(delivered: tuple[bytes, dict[str, str]], settings: Settings) -> None:
    settings.PAYPAL_WEBHOOK_VERIFICATION = "api"
    body, headers = delivered
    tampered = body.replace(b'"10.00"', b'"1.00"')
    assert tampered != body
    refused = _post(tampered, headers)
    assert (refused.status_code, _code(refused)) == (400, "webhook_signature_invalid")
    assert _written() == NOTHING
    assert _post(body, headers).status_code == 200
    assert _written()["inbox"] == 1


def test_api_verification_keeps_the_time_window_and_answers_503_when_paypal_is_down(
    delivered: tuple[bytes, dict[str, str]], settings: Settings
) -> None:
    settings.PAYPAL_WEBHOOK_VERIFICATION = "api"
    body, headers = delivered
    stale = {
        name: _ago(3600) if name.lower() == "paypal-transmission-time" else value for name, value in headers.items()
    }
    assert _code(_post(body, stale)) == "webhook_timestamp_stale"
    settings.PAYPAL_API_BASE = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    down = _post(body, headers)
    assert (down.status_code, _code(down)) == (503, "gateway_unavailable")
    assert _written() == NOTHING


@pytest.mark.parametrize(
    "url",
    [
        "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77",
        "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270",
        "https://paypal.com/v1/notifications/certs/CERT-1",
        "https://API.PayPal.com:443/v1/notifications/certs/CERT-1",
    ],
)
def test_https_paypal_com_certificate_urls_pass_the_rule(url: str) -> None:
    assert certificate_url_check(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "https://paypal.com/cert",
        "https://www.paypal.com/",
        "https://api.paypal.com/v1/notifications/certs/",
        "https://api.paypal.com/v1/notifications/certs/../../oauth2/token",
        "https://api.paypal.com/v1/identity/oauth2/userinfo",
    ],
)
def test_only_paypals_certificate_path_is_fetched_on_paypal_com(url: str) -> None:
    """An attacker may not choose which paypal.com page we download: certificates only."""
    with pytest.raises(WebhookRejectedError):
        certificate_url_check(url)


@pytest.mark.parametrize(
    ("name", "kind", "ids"),
    [
        ("checkout_order_approved", GatewayEventKind.PAYMENT, {"session_id": samples.ORDER_ID}),
        (
            "payment_capture_completed",
            GatewayEventKind.PAYMENT,
            {"session_id": samples.ORDER_ID, "transaction_id": samples.CAPTURE_ID},
        ),
        (
            "payment_capture_refunded",
            GatewayEventKind.REFUND,
            {"refund_id": samples.REFUND_ID, "transaction_id": samples.CAPTURE_ID},
        ),
        ("payment_capture_reversed", GatewayEventKind.DISPUTE, {"transaction_id": samples.CAPTURE_ID}),
        (
            "customer_dispute_created",
            GatewayEventKind.DISPUTE,
            {"dispute_id": samples.DISPUTE_ID, "transaction_id": samples.CAPTURE_ID},
        ),
    ],
)
def test_paypals_sample_events_parse_into_what_to_fetch_back(
    name: str, kind: GatewayEventKind, ids: dict[str, str]
) -> None:
    event = paypal_event_parse(json.dumps(samples.load(name)).encode())
    assert (event.gateway, event.kind, event.event_type) == (GatewayCode.PAYPAL, kind, samples.load(name)["event_type"])
    assert event.created_at is not None
    found = {field: getattr(event, field) for field in ("session_id", "transaction_id", "refund_id", "dispute_id")}
    assert found == {"session_id": "", "transaction_id": "", "refund_id": "", "dispute_id": "", **ids}


@pytest.mark.parametrize(
    "event_type",
    ["PAYMENT.CAPTURE.PENDING", "PAYMENT.CAPTURE.DENIED"],
)
def test_pending_and_denied_captures_are_payment_events(event_type: str) -> None:
    event = paypal_event_parse(json.dumps(samples.load("payment_capture_completed", event_type=event_type)).encode())
    assert (event.kind, event.transaction_id, event.session_id) == (
        GatewayEventKind.PAYMENT,
        samples.CAPTURE_ID,
        samples.ORDER_ID,
    )


def test_other_event_types_are_stored_and_ignored() -> None:
    event = paypal_event_parse(
        json.dumps(samples.load("checkout_order_approved", event_type="CHECKOUT.ORDER.COMPLETED")).encode()
    )
    assert event.kind is GatewayEventKind.IGNORED


_HEADERS = (
    "PAYPAL-TRANSMISSION-ID",
    "PAYPAL-TRANSMISSION-TIME",
    "PAYPAL-TRANSMISSION-SIG",
    "PAYPAL-CERT-URL",
    "PAYPAL-AUTH-ALGO",
)
_header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=120)


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(st.binary(max_size=2048), st.text(max_size=2048).map(str.encode)),
    headers=st.dictionaries(
        st.sampled_from(_HEADERS), st.one_of(_header_text, st.just("SHA256withRSA")), max_size=len(_HEADERS)
    ),
)
def test_arbitrary_bodies_and_headers_never_produce_a_server_error(
    paypal_certificate: PaypalPKI, body: bytes, headers: dict[str, str]
) -> None:
    """Anything an attacker sends is refused (400, or 429 past the refusal limit) or, for a
    paypal.com certificate we cannot fetch, 503; never a 500, never a stored row."""
    response = _post(body, headers)
    assert response.status_code in (400, 429, 503)
    assert _written()["inbox"] == 0


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payload=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
        max_leaves=20,
    )
)
def test_arbitrary_json_correctly_signed_never_produces_a_server_error(
    paypal_certificate: PaypalPKI, payload: Any
) -> None:
    body = json.dumps(payload).encode()
    headers = signed_headers(
        body, webhook_id=WEBHOOK_ID, private_key_pem=paypal_certificate.key_pem, cert_url=paypal_certificate.cert_url
    )
    response = _post(body, headers)
    assert response.status_code in (200, 400, 429)
