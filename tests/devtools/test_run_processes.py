"""``make run``'s payment helpers: which extra processes and which environment, decided by
``devtools.__main__.offline_payments`` without starting anything; the PayPal fake's development
PKI and its seeding; and the demo pay link it prints.

Nothing here starts ``make run``; the peers' and the receiver's own argument parsers are run on
the planned commands (their servers replaced), so a renamed option fails here, not on a
newcomer's machine. The PayPal fake's planned signing (key, certificate URL, webhook id) is
checked against the app with the environment ``make run`` gives it: a delivery signed so is
accepted once the planned seeding ran.
"""

from __future__ import annotations

import io
import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from django.conf import settings
from django.core.management import call_command
from pytest_django.fixtures import Settings

import devtools.o2s_receiver
import devtools.paypal_peer.__main__ as paypal_peer_main
import devtools.stripe_peer.__main__ as stripe_peer_main
from devtools.__main__ import (
    LOCAL_PAYPAL_CERT_URL,
    LOCAL_PAYPAL_WEBHOOK_ID,
    LOCAL_PEER_SECRET_KEY,
    LOCAL_PEER_WEBHOOK_SECRET,
    ExtraProcess,
    OfflinePayments,
    _how_to_pay,
    local_paypal_pki_ensure,
    offline_payments,
)
from devtools.paypal_peer.pki import PkiFiles
from devtools.paypal_peer.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Config
from devtools.paypal_peer.signing import signed_headers
from devtools.provision import BASE_DIR
from gateways.base import GatewayCode, PaymentMethod
from gateways.models import PaypalCertificate, WebhookEvent
from gateways.paypal.certificates import certificate_url_check
from gateways.services import payment_receive
from invoices.models import Invoice, InvoiceStatus
from invoices.pay_links import pay_link_verify
from paymenter import rls
from paymenter.money import Money
from paymenter.principals import SystemPrincipal
from paymenter.settings import DEV_DEFAULT_SECRETS
from tests.gateways.paypal import samples

PY = "/venv/bin/python"
STATE = Path("/data/localstripe")
PAYPAL_DIR = Path("/data/paypal")
REAL_PAYPAL = {"PAYPAL_CLIENT_ID": "a-real-paypal-app"}
REAL_STRIPE = {"STRIPE_SECRET_KEY": "sk_test_a_real_account", "STRIPE_WEBHOOK_SECRETS": "whsec_x"}
READER = SystemPrincipal(label="test:make-run-paypal")


def plan(environ: dict[str, str], **kwargs: Any) -> OfflinePayments:
    kwargs.setdefault("paypal_dir", PAYPAL_DIR)
    return offline_payments(environ, state_dir=STATE, python=PY, **kwargs)


def by_name(payments: OfflinePayments) -> dict[str, list[str]]:
    return {process.name: process.command for process in payments.processes}


def test_without_a_stripe_key_the_peer_localstripe_and_the_receiver_are_started() -> None:
    payments = plan({"PATH": "/usr/bin", **REAL_PAYPAL})

    assert payments.enabled
    assert payments.processes == [
        ExtraProcess(
            "localstripe",
            [
                *(PY, "-m", "devtools.localstripe_launcher", "--host", "127.0.0.1", "--port", "8420"),
                *("--state-dir", "/data/localstripe"),
            ],
        ),
        ExtraProcess(
            "stripe peer",
            [
                *(PY, "-m", "devtools.stripe_peer", "--host", "127.0.0.1", "--port", "8421"),
                *("--localstripe-url", "http://127.0.0.1:8420"),
                *("--webhook-url", "http://127.0.0.1:8000/webhooks/stripe/"),
                *("--webhook-secret", LOCAL_PEER_WEBHOOK_SECRET, "--delivery", "deliver"),
            ],
        ),
        ExtraProcess("o2s receiver", [PY, "-m", "devtools.o2s_receiver", "--host", "127.0.0.1", "--port", "8422"]),
    ]
    assert payments.env == {
        "STRIPE_SECRET_KEY": LOCAL_PEER_SECRET_KEY,
        "STRIPE_API_BASE": "http://127.0.0.1:8421",
        "STRIPE_WEBHOOK_SECRETS": LOCAL_PEER_WEBHOOK_SECRET,
        "O2S_CALLBACK_URL": "http://127.0.0.1:8422/callbacks",
        # the receiver reads this same variable: both sides agree without a secret on a command line
        "O2S_CALLBACK_SECRETS": DEV_DEFAULT_SECRETS["O2S_CALLBACK_SECRETS"],
    }
    assert payments.health_urls == {"the Stripe peer": "http://127.0.0.1:8421/_peer/health"}
    assert (payments.stripe_fake, payments.paypal_fake, payments.after_migrate) == (True, False, [])
    assert LOCAL_PEER_SECRET_KEY.startswith("sk_test_")  # the peer accepts test keys only
    assert LOCAL_PEER_WEBHOOK_SECRET.startswith("whsec_")
    notes = "\n".join(payments.notes)
    assert "TEST DOUBLE" in notes
    assert "no real money" in notes
    assert "[o2s-receiver]" in notes
    assert DEV_DEFAULT_SECRETS["O2S_CALLBACK_SECRETS"] not in notes
    assert "PayPal" not in notes


def test_without_a_paypal_client_id_the_paypal_fake_is_started_with_a_development_pki() -> None:
    payments = plan({"PATH": "/usr/bin", **REAL_STRIPE})

    assert payments.processes == [
        ExtraProcess(
            "paypal fake",
            [
                *(PY, "-m", "devtools.paypal_peer", "--host", "127.0.0.1", "--port", "8423"),
                *("--webhook-url", "http://127.0.0.1:8000/webhooks/paypal/", "--webhook-id", LOCAL_PAYPAL_WEBHOOK_ID),
                # a file: the key is not on a command line (ps shows those)
                *("--signing-key-file", "/data/paypal/key.pem", "--cert-url", LOCAL_PAYPAL_CERT_URL),
                *("--delivery", "deliver"),
            ],
        ),
        ExtraProcess("o2s receiver", [PY, "-m", "devtools.o2s_receiver", "--host", "127.0.0.1", "--port", "8422"]),
    ]
    assert payments.env == {
        "PAYPAL_CLIENT_ID": DEFAULT_CLIENT_ID,
        "PAYPAL_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
        "PAYPAL_API_BASE": "http://127.0.0.1:8423",
        "PAYPAL_WEBHOOK_ID": LOCAL_PAYPAL_WEBHOOK_ID,
        "PAYPAL_WEBHOOK_CA_FILE": "/data/paypal/root.pem",
        "O2S_CALLBACK_URL": "http://127.0.0.1:8422/callbacks",
        "O2S_CALLBACK_SECRETS": DEV_DEFAULT_SECRETS["O2S_CALLBACK_SECRETS"],
    }
    assert payments.paypal_pki == PkiFiles(PAYPAL_DIR)
    assert payments.after_migrate == [
        [
            *(PY, str(BASE_DIR / "manage.py"), "paypal_certificate_seed"),
            *("--url", LOCAL_PAYPAL_CERT_URL, "--pem", "/data/paypal/chain.pem"),
        ]
    ]
    assert payments.health_urls == {"the PayPal fake": "http://127.0.0.1:8423/_peer/health"}
    assert (payments.stripe_fake, payments.paypal_fake) == (False, True)
    # a URL PayPal could name: the app's rule for PAYPAL-CERT-URL is not relaxed for make run
    assert certificate_url_check(LOCAL_PAYPAL_CERT_URL) == LOCAL_PAYPAL_CERT_URL
    notes = "\n".join(payments.notes)
    assert "PayPal: local TEST DOUBLE at http://127.0.0.1:8423" in notes
    assert "no real money" in notes
    assert "Stripe" not in notes


def test_without_either_key_both_fakes_and_one_receiver_are_started() -> None:
    payments = plan({}, dev_callback_secrets="s")

    assert list(by_name(payments)) == ["localstripe", "stripe peer", "paypal fake", "o2s receiver"]
    assert set(payments.env) == {
        *("STRIPE_SECRET_KEY", "STRIPE_API_BASE", "STRIPE_WEBHOOK_SECRETS"),
        *("PAYPAL_CLIENT_ID", "PAYPAL_CLIENT_SECRET", "PAYPAL_API_BASE", "PAYPAL_WEBHOOK_ID", "PAYPAL_WEBHOOK_CA_FILE"),
        *("O2S_CALLBACK_URL", "O2S_CALLBACK_SECRETS"),
    }
    assert list(payments.health_urls) == ["the Stripe peer", "the PayPal fake"]
    assert len(payments.after_migrate) == 1


def test_ports_and_the_state_folders_follow_what_the_launcher_chose() -> None:
    payments = plan(
        {},
        paypal_dir=Path("/elsewhere/pp"),
        localstripe_port=40001,
        peer_port=40002,
        receiver_port=40003,
        paypal_port=40004,
        dev_callback_secrets="s",
    )

    commands = by_name(payments)
    assert commands["localstripe"][-4:] == ["--port", "40001", "--state-dir", "/data/localstripe"]
    assert "http://127.0.0.1:40001" in commands["stripe peer"]
    assert commands["stripe peer"][5:7] == ["--port", "40002"]
    assert commands["o2s receiver"][-2:] == ["--port", "40003"]
    assert commands["paypal fake"][5:7] == ["--port", "40004"]
    assert "/elsewhere/pp/key.pem" in commands["paypal fake"]
    assert payments.env["STRIPE_API_BASE"] == "http://127.0.0.1:40002"
    assert payments.env["PAYPAL_API_BASE"] == "http://127.0.0.1:40004"
    assert payments.env["PAYPAL_WEBHOOK_CA_FILE"] == "/elsewhere/pp/root.pem"
    assert payments.after_migrate[0][-1] == "/elsewhere/pp/chain.pem"
    assert payments.env["O2S_CALLBACK_URL"] == "http://127.0.0.1:40003/callbacks"
    assert payments.env["O2S_CALLBACK_SECRETS"] == "s"
    assert payments.health_urls == {
        "the Stripe peer": "http://127.0.0.1:40002/_peer/health",
        "the PayPal fake": "http://127.0.0.1:40004/_peer/health",
    }


def test_the_developers_callback_secrets_are_kept_and_shared_with_the_receiver() -> None:
    payments = plan({"O2S_CALLBACK_SECRETS": "mine,older"})

    assert "O2S_CALLBACK_SECRETS" not in payments.env  # the children inherit the developer's value
    assert payments.env["O2S_CALLBACK_URL"] == "http://127.0.0.1:8422/callbacks"
    assert "o2s receiver" in by_name(payments)


def test_with_an_o2s_callback_url_set_it_is_kept_and_no_receiver_is_started() -> None:
    payments = plan({"O2S_CALLBACK_URL": "https://o2s.example/callbacks"})

    assert list(by_name(payments)) == ["localstripe", "stripe peer", "paypal fake"]
    assert "O2S_CALLBACK_URL" not in payments.env
    assert "O2S_CALLBACK_SECRETS" not in payments.env
    assert payments.env["STRIPE_API_BASE"] == "http://127.0.0.1:8421"
    assert payments.env["PAYPAL_API_BASE"] == "http://127.0.0.1:8423"


@pytest.mark.parametrize("extra", [{}, {"O2S_CALLBACK_URL": "https://o2s.example/callbacks"}])
def test_with_a_stripe_key_and_a_paypal_client_id_nothing_is_started(extra: dict[str, str]) -> None:
    payments = plan({**REAL_STRIPE, **REAL_PAYPAL, **extra})

    assert payments == OfflinePayments()
    assert not payments.enabled
    # STRIPE_*, PAYPAL_*, their API bases and O2S_CALLBACK_URL stay as the developer set them
    assert payments.env == {}
    assert (payments.health_urls, payments.after_migrate, payments.paypal_pki) == ({}, [], None)


def test_with_a_paypal_client_id_no_paypal_fake_is_started_and_its_settings_are_kept() -> None:
    payments = plan({**REAL_PAYPAL, "PAYPAL_API_BASE": "https://api-m.sandbox.paypal.com"}, dev_callback_secrets="s")

    assert "paypal fake" not in by_name(payments)
    assert not [name for name in payments.env if name.startswith("PAYPAL_")]
    assert payments.after_migrate == []


@pytest.mark.parametrize("name", ["STRIPE_SECRET_KEY", "PAYPAL_CLIENT_ID"])
def test_an_empty_key_counts_as_unset(name: str) -> None:
    payments = plan({**REAL_STRIPE, **REAL_PAYPAL, name: ""}, dev_callback_secrets="s")
    assert payments.enabled
    assert (payments.stripe_fake, payments.paypal_fake) == (name == "STRIPE_SECRET_KEY", name == "PAYPAL_CLIENT_ID")


def test_the_pay_notes_name_each_fake_that_runs() -> None:
    link = "INV-2026-000002 AUD 27.50 http://127.0.0.1:8000/pay/abc/"
    both = "\n".join(_how_to_pay(link, plan({}, dev_callback_secrets="s")))
    stripe_only = "\n".join(_how_to_pay(link, plan(REAL_PAYPAL, dev_callback_secrets="s")))
    paypal_only = "\n".join(_how_to_pay(link, plan(REAL_STRIPE, dev_callback_secrets="s")))

    assert "pay demo invoice INV-2026-000002 (AUD 27.50 due): http://127.0.0.1:8000/pay/abc/" in both
    assert "Pay by card" in both
    assert 'press "Pay with PayPal"' in both
    assert "PayPal TEST DOUBLE" in both
    assert "no real money" in both
    assert ("Pay by card" in stripe_only, "PayPal" in stripe_only) == (True, False)
    assert ("Pay by card" in paypal_only, "Pay with PayPal" in paypal_only) == (False, True)
    assert _how_to_pay(link, plan({**REAL_STRIPE, **REAL_PAYPAL})) == [
        "pay demo invoice INV-2026-000002 (AUD 27.50 due): http://127.0.0.1:8000/pay/abc/"
    ]


def test_the_planned_commands_are_accepted_by_the_peer_and_the_receiver(monkeypatch: pytest.MonkeyPatch) -> None:
    commands = by_name(plan(REAL_PAYPAL, dev_callback_secrets="s"))
    served: dict[str, Any] = {}

    def fake_serve(**kwargs: Any) -> None:
        served.update(kwargs)

    class FakeReceiverServer:
        server_address = ("127.0.0.1", 8422)

        def __init__(self, host: str, port: int, secrets: list[str]) -> None:
            served["receiver"] = (host, port, secrets)

        def serve_forever(self) -> None:
            return

        def server_close(self) -> None:
            return

    monkeypatch.setattr(stripe_peer_main, "serve", fake_serve)
    monkeypatch.setattr(devtools.o2s_receiver, "ReceiverServer", FakeReceiverServer)
    monkeypatch.setenv("O2S_CALLBACK_SECRETS", "from-env-1,from-env-2")

    stripe_peer_main.main(commands["stripe peer"][3:])
    devtools.o2s_receiver.main(commands["o2s receiver"][3:])

    webhook = served["webhook"]
    assert (served["host"], served["port"], served["localstripe_url"]) == ("127.0.0.1", 8421, "http://127.0.0.1:8420")
    assert (webhook.url, webhook.secret, webhook.delivery) == (
        "http://127.0.0.1:8000/webhooks/stripe/",
        LOCAL_PEER_WEBHOOK_SECRET,
        "deliver",
    )
    assert served["receiver"] == ("127.0.0.1", 8422, ["from-env-1", "from-env-2"])


# -- manage.py demo_pay_link: the link make run prints -----------------------------------------

PAY_LINE = re.compile(r"^(?P<number>INV-\d{4}-\d{6}) (?P<amount>[A-Z]{3} [\d,]+\.\d\d) (?P<url>\S+)$")


def demo_pay_link() -> re.Match[str]:
    out = io.StringIO()
    call_command("demo_pay_link", stdout=out)
    match = PAY_LINE.match(out.getvalue().strip())
    assert match, out.getvalue()
    return match


@pytest.mark.django_db
def test_the_demo_pay_link_names_an_open_demo_invoice_and_a_new_one_once_all_are_paid(
    system_principal: SystemPrincipal,
) -> None:
    call_command("load_demo_data", stdout=io.StringIO())
    open_demo = list(
        Invoice.objects.filter(customer__external_id__startswith="demo-", status=InvoiceStatus.OPEN).order_by(
            "customer__external_id"
        )
    )
    assert len(open_demo) == 2

    first = demo_pay_link()
    assert first["number"] == open_demo[0].number  # the Australian customer's
    assert first["amount"] == Money(open_demo[0].amount_due_minor, "AUD").format()
    assert first["url"].startswith(f"{settings.PUBLIC_BASE_URL}/pay/")
    assert pay_link_verify(first["url"].rstrip("/").rsplit("/", 1)[1]).invoice_id == open_demo[0].id

    for invoice in open_demo:
        payment_receive(
            principal=system_principal,
            invoice_id=invoice.id,
            amount=Money(invoice.amount_due_minor, invoice.currency),
            gateway=GatewayCode.BANK_TRANSFER,
            transaction_id=f"test-{invoice.number}",
            method=PaymentMethod.BANK_TRANSFER,
            recorded_by="test",
        )
    issued = demo_pay_link()

    fresh = Invoice.objects.get(number=issued["number"])
    assert fresh.id not in {invoice.id for invoice in open_demo}
    assert (fresh.status, fresh.customer.external_id, fresh.total_minor) == (
        "open",
        "demo-au-1",
        open_demo[0].total_minor,
    )
    assert demo_pay_link()["number"] == issued["number"]  # not one more on every run


# -- the PayPal fake: its development PKI, its command, the seeding ------------------------------


def planned_paypal_config(payments: OfflinePayments, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What the fake would be started with: its own parser run on the planned command."""
    served: dict[str, Any] = {}
    monkeypatch.setattr(paypal_peer_main, "serve", lambda **kwargs: served.update(kwargs))
    paypal_peer_main.main(by_name(payments)["paypal fake"][3:])
    return served


def test_the_development_pki_is_made_once_and_its_key_is_private(tmp_path: Path) -> None:
    files = local_paypal_pki_ensure(PkiFiles(tmp_path / "paypal"))
    made = {path.name: path.read_bytes() for path in (files.root, files.chain, files.key)}

    again = local_paypal_pki_ensure(PkiFiles(tmp_path / "paypal"))

    assert again == files
    assert {path.name: path.read_bytes() for path in (again.root, again.chain, again.key)} == made  # not remade
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    root = x509.load_pem_x509_certificate(made["root.pem"])
    leaf, intermediate = x509.load_pem_x509_certificates(made["chain.pem"])
    assert leaf.issuer == intermediate.subject
    assert intermediate.issuer == root.subject == root.issuer
    assert "Development" in root.subject.rfc4514_string()
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    ) == ["messageverificationcerts.paypal.com"]
    assert sorted(path.name for path in files.directory.iterdir()) == ["chain.pem", "key.pem", "root.pem"]


def test_a_partly_written_pki_is_made_anew_as_a_whole(tmp_path: Path) -> None:
    files = local_paypal_pki_ensure(PkiFiles(tmp_path / "paypal"))
    old_root, old_key = files.root.read_text(), files.key.read_text()
    files.chain.unlink()  # as if the first run was interrupted

    local_paypal_pki_ensure(files)

    assert files.complete()
    assert files.root.read_text() != old_root
    assert files.key.read_text() != old_key


def test_the_planned_paypal_command_is_accepted_by_the_fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payments = plan(REAL_STRIPE, paypal_dir=tmp_path / "paypal", paypal_port=40123, dev_callback_secrets="s")
    assert payments.paypal_pki is not None
    local_paypal_pki_ensure(payments.paypal_pki)

    served = planned_paypal_config(payments, monkeypatch)

    assert (served["host"], served["port"]) == ("127.0.0.1", 40123)
    # the fake's credentials are the ones the app is given
    assert (served["client_id"], served["client_secret"]) == (
        payments.env["PAYPAL_CLIENT_ID"],
        payments.env["PAYPAL_CLIENT_SECRET"],
    )
    assert served["config"] == Config(
        webhook_url="http://127.0.0.1:8000/webhooks/paypal/",
        webhook_id=payments.env["PAYPAL_WEBHOOK_ID"],
        signing_key_pem=payments.paypal_pki.key.read_text(),
        cert_url=LOCAL_PAYPAL_CERT_URL,
        delivery="deliver",
    )


@pytest.mark.django_db
def test_after_the_planned_seeding_the_app_accepts_what_the_fake_signs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    payments = plan(REAL_STRIPE, paypal_dir=tmp_path / "paypal", dev_callback_secrets="s")
    assert payments.paypal_pki is not None
    local_paypal_pki_ensure(payments.paypal_pki)
    for name, value in payments.env.items():  # the app as make run configures it
        if name.startswith("PAYPAL_"):
            setattr(settings, name, value)
    settings.PAYPAL_WEBHOOK_VERIFICATION = "offline"
    config = planned_paypal_config(payments, monkeypatch)["config"]
    (seed,) = payments.after_migrate
    assert seed[:3] == [PY, str(BASE_DIR / "manage.py"), "paypal_certificate_seed"]

    call_command(*seed[2:], stdout=io.StringIO())  # the manage.py command make run runs
    body = json.dumps(samples.load("payment_capture_completed")).encode()
    headers = signed_headers(
        body, webhook_id=config.webhook_id, private_key_pem=config.signing_key_pem, cert_url=config.cert_url
    )
    response = samples.post_delivery(body, headers)

    assert (response.status_code, response.json()) == (200, {"received": True, "duplicate": False})
    with rls.acting_as(READER):
        assert list(PaypalCertificate.objects.values_list("url", "source")) == [(LOCAL_PAYPAL_CERT_URL, "seeded")]
        assert list(WebhookEvent.objects.values_list("gateway", "event_type")) == [
            ("paypal", "PAYMENT.CAPTURE.COMPLETED")
        ]
