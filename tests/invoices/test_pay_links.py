"""Signed pay links: the hosted invoice page, and every way a link is refused."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.core import signing
from django.test import Client
from django.urls import reverse

from invoices.errors import InvoiceStateError, PayLinkExpiredError, PayLinkInvalidError
from invoices.models import Invoice
from invoices.pay_links import SALT, pay_link_token, pay_link_url, pay_link_verify
from invoices.services import invoice_void
from tests.factories import FACTORY_PRINCIPAL, make_customer, make_invoice

# No ambient principal: the page must establish its own (the client runs in this thread).
pytestmark = pytest.mark.django_db

REFUSAL_TEXT = "This payment link is invalid or has expired"


def _page(token: str) -> Any:
    return Client().get(reverse("portal:hosted-invoice", kwargs={"token": token}))


def _text(response: Any) -> str:
    return str(response.content.decode())


def _invoice(**customer: Any) -> Invoice:
    return make_invoice(make_customer(**customer), lines=[("VPS large, 1 month", 2, 4550), ("IPv4 address", 1, 300)])


def _flip(char: str) -> str:
    return "A" if char != "A" else "B"


def test_a_valid_link_shows_the_invoice_read_only() -> None:
    invoice = _invoice(name="Hobart Hosting Pty Ltd", tax_id="53 004 085 616")

    response = _page(pay_link_token(invoice=invoice))

    text = _text(response)
    assert response.status_code == 200
    assert "Tax invoice" in text
    assert str(invoice.number) in text
    assert "Tasmanian Cloud Pty Ltd" in text
    assert "ABN 51 824 753 556" in text
    assert "Hobart Hosting Pty Ltd" in text
    assert "VPS large, 1 month" in text
    assert "IPv4 address" in text
    # 2 x 45.50 = 91.00 + GST 9.10; 3.00 + GST 0.30; totals 94.00 + 9.40 = 103.40
    for amount in ("AUD 45.50", "AUD 9.10", "AUD 100.10", "AUD 0.30", "AUD 3.30", "AUD 94.00", "AUD 9.40"):
        assert amount in text
    assert text.count("AUD 103.40") == 2  # total and amount due
    assert "<dd>Open</dd>" in text
    for inline in ("<form", "<script", "style=", "http://", "https://"):  # nothing to load, nothing inline
        assert inline not in text
    assert "no-store" in response.headers["Cache-Control"]
    assert response.headers["X-Robots-Tag"] == "noindex, nofollow"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_a_voided_invoice_shows_status_void_and_nothing_due() -> None:
    invoice = _invoice()
    invoice_void(principal=FACTORY_PRINCIPAL, invoice_id=invoice.id, reason="duplicate")

    text = _text(_page(pay_link_token(invoice=invoice)))

    assert "<dd>Void</dd>" in text
    assert "AUD 0.00" in text  # amount due


@pytest.mark.parametrize("part", [0, 2], ids=["payload", "signature"])
def test_a_tampered_link_is_refused_with_400(part: int) -> None:
    invoice = _invoice()
    pieces = pay_link_token(invoice=invoice).split(":")
    pieces[part] = _flip(pieces[part][0]) + pieces[part][1:]

    response = _page(":".join(pieces))

    assert response.status_code == 400
    assert REFUSAL_TEXT in _text(response)
    assert str(invoice.number) not in _text(response)
    assert response.headers["X-Robots-Tag"] == "noindex, nofollow"
    assert "no-store" in response.headers["Cache-Control"]


def test_another_invoices_claims_under_the_old_signature_are_refused() -> None:
    invoice_a, invoice_b = _invoice(), _invoice()
    _payload_a, timestamp_a, signature_a = pay_link_token(invoice=invoice_a).split(":")
    payload_b = pay_link_token(invoice=invoice_b).split(":")[0]

    response = _page(f"{payload_b}:{timestamp_a}:{signature_a}")

    assert response.status_code == 400
    assert str(invoice_a.number) not in _text(response)
    assert str(invoice_b.number) not in _text(response)


@pytest.mark.parametrize("token", ["", "garbage", "a:b:c", "x" * 300])
def test_a_malformed_link_is_refused(token: str) -> None:
    with pytest.raises(PayLinkInvalidError):
        pay_link_verify(token)


def test_a_link_signed_for_another_purpose_is_refused() -> None:
    invoice = _invoice()
    foreign = signing.TimestampSigner(salt="another.purpose").sign_object(
        {"i": str(invoice.id), "c": str(invoice.customer_id)}
    )

    assert _page(foreign).status_code == 400


def test_an_expired_link_is_refused_with_410(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    invoice = _invoice()
    settings.PAY_LINK_MAX_AGE_DAYS = 30
    signed_at = int(time.time()) - 30 * 86_400 - 60
    monkeypatch.setattr(signing.TimestampSigner, "timestamp", lambda self: signing.b62_encode(signed_at))
    token = pay_link_token(invoice=invoice)
    monkeypatch.undo()

    response = _page(token)

    assert response.status_code == 410
    assert REFUSAL_TEXT in _text(response)
    assert str(invoice.number) not in _text(response)
    with pytest.raises(PayLinkExpiredError):
        pay_link_verify(token)


def test_a_link_just_inside_its_lifetime_still_works(monkeypatch: pytest.MonkeyPatch) -> None:
    invoice = _invoice()
    signed_at = int(time.time()) - 29 * 86_400
    monkeypatch.setattr(signing.TimestampSigner, "timestamp", lambda self: signing.b62_encode(signed_at))
    token = pay_link_token(invoice=invoice)
    monkeypatch.undo()

    assert _page(token).status_code == 200


def test_a_genuine_signature_cannot_pair_one_customer_with_anothers_invoice() -> None:
    # Even a correctly signed token (e.g. from a leaked key) is bound by both ids, and the
    # page reads as that one customer, so row-level security refuses the other's invoice.
    invoice_x, invoice_y = _invoice(), _invoice()
    crossed = signing.TimestampSigner(salt=SALT).sign_object({"i": str(invoice_y.id), "c": str(invoice_x.customer_id)})

    response = _page(crossed)

    assert response.status_code == 404
    assert REFUSAL_TEXT in _text(response)
    assert str(invoice_y.number) not in _text(response)
    assert str(invoice_x.number) not in _text(response)


def test_each_link_shows_only_its_own_invoice() -> None:
    invoice_x, invoice_y = _invoice(), _invoice()

    text = _text(_page(pay_link_token(invoice=invoice_x)))

    assert str(invoice_x.number) in text
    assert str(invoice_y.number) not in text


def test_drafts_get_no_link() -> None:
    draft = make_invoice(make_customer(), issue=False)

    with pytest.raises(InvoiceStateError):
        pay_link_token(invoice=draft)


def test_the_url_is_absolute_on_the_public_base_url_whatever_the_request_host(settings: Any) -> None:
    settings.PUBLIC_BASE_URL = "https://billing.example.com"
    invoice = _invoice()

    url = pay_link_url(invoice=invoice, request=Client().get("/healthz", HTTP_HOST="evil.example").wsgi_request)

    assert url.startswith("https://billing.example.com/pay/")
    claims = pay_link_verify(url.removeprefix("https://billing.example.com/pay/").rstrip("/"))
    assert (claims.invoice_id, claims.customer_id) == (invoice.id, invoice.customer_id)


def test_only_get_and_head_are_answered() -> None:
    invoice = _invoice()
    url = reverse("portal:hosted-invoice", kwargs={"token": pay_link_token(invoice=invoice)})

    assert Client().post(url).status_code == 405
