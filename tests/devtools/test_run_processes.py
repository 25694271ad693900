"""``make run``'s payment helpers: which extra processes and which environment, decided by
``devtools.__main__.offline_payments`` without starting anything; and the demo pay link it prints.

Nothing here starts ``make run``; the peer's and the receiver's own argument parsers are run on
the planned commands (their servers replaced), so a renamed option fails here, not on a
newcomer's machine.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command

import devtools.o2s_receiver
import devtools.stripe_peer.__main__ as stripe_peer_main
from devtools.__main__ import (
    LOCAL_PEER_SECRET_KEY,
    LOCAL_PEER_WEBHOOK_SECRET,
    ExtraProcess,
    OfflinePayments,
    offline_payments,
)
from gateways.base import GatewayCode, PaymentMethod
from gateways.services import payment_receive
from invoices.models import Invoice, InvoiceStatus
from invoices.pay_links import pay_link_verify
from paymenter.money import Money
from paymenter.principals import SystemPrincipal
from paymenter.settings import DEV_DEFAULT_SECRETS

PY = "/venv/bin/python"
STATE = Path("/data/localstripe")


def plan(environ: dict[str, str], **kwargs: Any) -> OfflinePayments:
    return offline_payments(environ, state_dir=STATE, python=PY, **kwargs)


def by_name(payments: OfflinePayments) -> dict[str, list[str]]:
    return {process.name: process.command for process in payments.processes}


def test_without_a_stripe_key_the_peer_localstripe_and_the_receiver_are_started() -> None:
    payments = plan({"PATH": "/usr/bin"})

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
    assert payments.health_url == "http://127.0.0.1:8421/_peer/health"
    assert LOCAL_PEER_SECRET_KEY.startswith("sk_test_")  # the peer accepts test keys only
    assert LOCAL_PEER_WEBHOOK_SECRET.startswith("whsec_")
    notes = "\n".join(payments.notes)
    assert "TEST DOUBLE" in notes
    assert "no real money" in notes
    assert "[o2s-receiver]" in notes
    assert DEV_DEFAULT_SECRETS["O2S_CALLBACK_SECRETS"] not in notes


def test_ports_and_the_state_folder_follow_what_the_launcher_chose() -> None:
    payments = plan({}, localstripe_port=40001, peer_port=40002, receiver_port=40003, dev_callback_secrets="s")

    commands = by_name(payments)
    assert commands["localstripe"][-4:] == ["--port", "40001", "--state-dir", "/data/localstripe"]
    assert "http://127.0.0.1:40001" in commands["stripe peer"]
    assert commands["stripe peer"][5:7] == ["--port", "40002"]
    assert commands["o2s receiver"][-2:] == ["--port", "40003"]
    assert payments.env["STRIPE_API_BASE"] == "http://127.0.0.1:40002"
    assert payments.env["O2S_CALLBACK_URL"] == "http://127.0.0.1:40003/callbacks"
    assert payments.env["O2S_CALLBACK_SECRETS"] == "s"
    assert payments.health_url == "http://127.0.0.1:40002/_peer/health"


def test_the_developers_callback_secrets_are_kept_and_shared_with_the_receiver() -> None:
    payments = plan({"O2S_CALLBACK_SECRETS": "mine,older"})

    assert "O2S_CALLBACK_SECRETS" not in payments.env  # the children inherit the developer's value
    assert payments.env["O2S_CALLBACK_URL"] == "http://127.0.0.1:8422/callbacks"
    assert "o2s receiver" in by_name(payments)


def test_with_an_o2s_callback_url_set_it_is_kept_and_no_receiver_is_started() -> None:
    payments = plan({"O2S_CALLBACK_URL": "https://o2s.example/callbacks"})

    assert list(by_name(payments)) == ["localstripe", "stripe peer"]
    assert "O2S_CALLBACK_URL" not in payments.env
    assert "O2S_CALLBACK_SECRETS" not in payments.env
    assert payments.env["STRIPE_API_BASE"] == "http://127.0.0.1:8421"


@pytest.mark.parametrize("extra", [{}, {"O2S_CALLBACK_URL": "https://o2s.example/callbacks"}])
def test_with_a_stripe_key_neither_the_peer_nor_the_receiver_is_started(extra: dict[str, str]) -> None:
    payments = plan({"STRIPE_SECRET_KEY": "sk_test_a_real_account", "STRIPE_WEBHOOK_SECRETS": "whsec_x", **extra})

    assert payments == OfflinePayments()
    assert not payments.enabled
    assert payments.env == {}  # STRIPE_*, STRIPE_API_BASE and O2S_CALLBACK_URL stay as the developer set them
    assert payments.health_url is None


def test_an_empty_stripe_key_counts_as_unset() -> None:
    assert plan({"STRIPE_SECRET_KEY": ""}, dev_callback_secrets="s").enabled


def test_the_planned_commands_are_accepted_by_the_peer_and_the_receiver(monkeypatch: pytest.MonkeyPatch) -> None:
    commands = by_name(plan({}, dev_callback_secrets="s"))
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
