"""``manage.py paypal_certificate_seed``: a certificate is stored for its URL only when both
pass the rules a fetched one must pass; seeding a URL again replaces it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from pytest_django.fixtures import Settings

from audit.models import AuditEvent
from gateways.models import PaypalCertificate
from paymenter import rls
from paymenter.principals import SystemPrincipal
from tests.gateways.paypal import samples
from tests.paypal_peer_fixtures import PaypalPeer, PaypalPKI, make_pki, seed_certificate, signed_delivery

pytestmark = pytest.mark.django_db
READER = SystemPrincipal(label="test:paypal-certificates")


def _stored() -> list[tuple[str, str, str, datetime]]:
    with rls.acting_as(READER):
        return list(PaypalCertificate.objects.order_by("url").values_list("url", "pem", "source", "not_after"))


def _seed_audits() -> list[tuple[str, str]]:
    with rls.acting_as(READER):
        return list(
            AuditEvent.objects.filter(action="paypal.certificate_seeded")
            .order_by("sequence")
            .values_list("object_id", "payload__sha256")
        )


def test_a_certificate_is_seeded_for_its_url_and_then_verifies_deliveries(
    paypal_settings: PaypalPeer, paypal_pki: PaypalPKI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_certificate(paypal_pki, tmp_path)
    assert _stored() == [
        (paypal_pki.cert_url, paypal_pki.chain_pem, "seeded", datetime(2040, 1, 1, tzinfo=UTC)),
    ]
    assert f"seeded {paypal_pki.cert_url}" in capsys.readouterr().out
    [(object_id, fingerprint)] = _seed_audits()  # trusting a certificate by hand is audited
    assert object_id == paypal_pki.cert_url
    assert len(fingerprint) == 64
    delivery = signed_delivery(samples.load("checkout_order_approved"), paypal_pki)
    assert samples.post_delivery(*delivery).status_code == 200


def test_seeding_a_url_again_replaces_its_certificate(
    paypal_settings: PaypalPeer, settings: Settings, tmp_path: Path
) -> None:
    url = "https://api.paypal.com/v1/notifications/certs/CERT-rotated"
    old, new = make_pki(cert_url=url), make_pki(cert_url=url)
    anchors = tmp_path / "anchors.pem"
    anchors.write_text(old.root_pem + new.root_pem)
    settings.PAYPAL_WEBHOOK_CA_FILE = str(anchors)
    seed_certificate(old, tmp_path)
    seed_certificate(new, tmp_path)
    assert [(stored_url, pem) for stored_url, pem, _, _ in _stored()] == [(url, new.chain_pem)]
    event = samples.load("checkout_order_approved")
    assert samples.post_delivery(*signed_delivery(event, new)).status_code == 200
    assert samples.post_delivery(*signed_delivery(dict(event, id="WH-OLD-KEY"), old)).json()["error"]["code"] == (
        "webhook_signature_invalid"
    )


@pytest.mark.parametrize(
    "case",
    [
        ("https://api.paypal.com.evil.test/cert", {}, "webhook_certificate_url_refused"),
        ("http://api.paypal.com/v1/notifications/certs/CERT-1", {}, "webhook_certificate_url_refused"),
        ("https://127.0.0.1/cert", {}, "webhook_certificate_url_refused"),
        (
            "https://api.paypal.com/v1/notifications/certs/CERT-expired",
            {"leaf_from": datetime(2020, 1, 1, tzinfo=UTC), "leaf_until": datetime(2021, 1, 1, tzinfo=UTC)},
            "webhook_certificate_invalid",
        ),
        (
            "https://api.paypal.com/v1/notifications/certs/CERT-other-ca",
            {"root_name": "Another Root CA"},
            "webhook_certificate_invalid",
        ),
        (
            "https://api.paypal.com/v1/notifications/certs/CERT-not-paypal",
            {"leaf_name": "www.example.com"},
            "webhook_certificate_invalid",
        ),
    ],
)
def test_a_url_off_paypal_or_a_certificate_that_does_not_check_out_is_refused(
    paypal_settings: PaypalPeer,
    paypal_pki: PaypalPKI,
    settings: Settings,
    tmp_path: Path,
    case: tuple[str, dict[str, Any], str],
) -> None:
    url, made, refusal = case
    pki = make_pki(**made) if made else paypal_pki
    if made and "root_name" not in made:  # the leaf is wrong, not its authority
        settings.PAYPAL_WEBHOOK_CA_FILE = str(pki.write_root(tmp_path))
    with pytest.raises(CommandError, match=refusal):
        seed_certificate(pki, tmp_path, url=url)
    assert _stored() == []
    assert _seed_audits() == []


def test_a_file_that_is_not_a_pem_certificate_is_refused(paypal_settings: PaypalPeer, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    url = "https://api.paypal.com/v1/notifications/certs/CERT-junk"
    with pytest.raises(CommandError, match="webhook_certificate_invalid"):
        call_command("paypal_certificate_seed", url=url, pem=str(junk))
    with pytest.raises(CommandError, match="cannot read"):
        call_command("paypal_certificate_seed", url=url, pem=str(tmp_path / "missing.pem"))
    assert _stored() == []
