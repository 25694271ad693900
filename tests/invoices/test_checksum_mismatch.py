"""An invoice whose totals were changed in the database (as the owner, triggers disabled)
stops money: no pay link, no payment, no void or write-off and no callback, a hosted page
that shows nothing of it; and its first detection is audited and alerted exactly once.

Committed data (the owner's connection must see the invoice): every assertion is about
this test's own invoice, except the metric, which is read before and after."""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.test import Client
from django.urls import reverse

from billing.models import Customer
from gateways.models import Payment
from invoices.errors import InvoiceChecksumMismatchError
from invoices.models import Invoice, InvoiceChecksumMismatch, InvoiceStatus
from invoices.pay_links import pay_link_token
from invoices.services import (
    invoice_checksum_mismatch_record,
    invoice_mark_uncollectible,
)
from invoices.services.checksums import ALERT
from paymenter import rls
from paymenter.metrics import Metric, metrics_snapshot
from paymenter.money import Money
from paymenter.principals import SystemPrincipal
from tests.factories import make_customer, make_invoice, pay_invoice, start_card_payment
from tests.invoices.tampering import OBSERVER, invoice_trace, mismatch_events, tamper_totals
from tests.o2s.api_helpers import O2SClient, error_code, make_api_client

pytestmark = pytest.mark.committed

URL = "/api/v1/invoices/"
LINES = [("VPS large, 1 month", 2, 4550), ("IPv4 address", 1, 300)]  # 94.00 + GST 9.40 = 103.40
TAMPERED_TOTAL = 1  # AUD 0.01


def _new_invoice(customer: Customer | None = None) -> Invoice:
    with rls.acting_as(OBSERVER):
        return make_invoice(customer or make_customer(), lines=LINES)


def _tampered(invoice: Invoice) -> Invoice:
    tamper_totals(invoice.id, total_minor=TAMPERED_TOTAL)
    with rls.acting_as(OBSERVER):
        return Invoice.objects.get(id=invoice.id)


@pytest.fixture
def api(committed_db: None) -> O2SClient:
    with rls.acting_as(OBSERVER):
        return make_api_client()


@pytest.fixture
def pay_link(committed_db: None) -> tuple[Invoice, str]:
    """A tampered invoice and the pay link its customer was sent while it was intact."""
    invoice = _new_invoice()
    token = pay_link_token(invoice=invoice)
    return _tampered(invoice), token


def _page(token: str) -> Any:
    return Client().get(reverse("portal:hosted-invoice", kwargs={"token": token}))


def _admin_client() -> Client:
    user = User.objects.create_user(username=f"staff-admin-{uuid.uuid4().hex[:8]}", is_staff=True)
    user.groups.add(Group.objects.get(name="admin"))
    client = Client()
    client.force_login(user)
    return client


def _alerts(caplog: pytest.LogCaptureFixture, invoice: Invoice) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if getattr(record, "alert", None) == ALERT and getattr(record, "invoice_id", None) == str(invoice.id)
    ]


def _payments(invoice: Invoice) -> int:
    with rls.acting_as(OBSERVER):
        return Payment.objects.filter(invoice_id=invoice.id).count()


def _mismatches_metric() -> int:
    return metrics_snapshot()[Metric.INVOICE_CHECKSUM_MISMATCHES.value]


# --- no pay link ---------------------------------------------------------------------------


def test_the_api_serves_a_tampered_invoice_with_no_pay_url(api: O2SClient, committed_db: None) -> None:
    tampered = _tampered(_new_invoice())
    with rls.acting_as(OBSERVER):
        intact = _new_invoice(Customer.objects.get(id=tampered.customer_id))

    one = api.get(f"{URL}{tampered.id}/")
    listed = api.get(URL, {"customer": str(tampered.customer_id)})

    assert one.status_code == 200
    assert (one.json()["status"], one.json()["checksum_valid"], one.json()["pay_url"]) == ("open", False, None)
    by_id = {item["id"]: item for item in listed.json()["results"]}
    assert (by_id[str(tampered.id)]["checksum_valid"], by_id[str(tampered.id)]["pay_url"]) == (False, None)
    assert by_id[str(intact.id)]["checksum_valid"] is True  # the same customer's intact invoice is payable
    assert by_id[str(intact.id)]["pay_url"].startswith("http")


# --- no money moves, no state change, no callback ------------------------------------------


def test_void_write_off_and_payment_are_refused_409_and_change_nothing(api: O2SClient, committed_db: None) -> None:
    original = _new_invoice()
    tampered = _tampered(original)
    first = invoice_trace(tampered.id)

    void = api.post(
        f"{URL}{tampered.id}/void/", {"reason": "ordered by mistake"}, HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4())
    )

    # the refused void was the first detection: it recorded that, and nothing else
    assert (void.status_code, error_code(void)) == (409, "invoice_checksum_mismatch")
    after_void = invoice_trace(tampered.id)
    assert after_void["row"] == first["row"]
    assert after_void["audit"] == [*first["audit"], "invoice.checksum_mismatch"]
    assert (after_void["outbox"], after_void["mismatch_rows"]) == (0, 1)
    assert after_void["idempotency"] == first["idempotency"]  # a refusal is not stored for replay

    again = api.post(f"{URL}{tampered.id}/void/", {})
    with rls.acting_as(OBSERVER):
        attempts = {
            "mark_uncollectible": lambda: invoice_mark_uncollectible(
                principal=OBSERVER, invoice_id=tampered.id, reason="dunning exhausted"
            ),
            "receive the tampered amount": lambda: pay_invoice(
                tampered, Money(TAMPERED_TOTAL, "AUD"), f"p1-{tampered.id}", principal=OBSERVER
            ),
            "receive the original amount": lambda: pay_invoice(
                tampered, Money(original.total_minor, "AUD"), f"p2-{tampered.id}", principal=OBSERVER
            ),
            "start a payment": lambda: start_card_payment(tampered, principal=OBSERVER),
        }
        for name, attempt in attempts.items():
            with pytest.raises(InvoiceChecksumMismatchError) as refused:
                attempt()
            assert (refused.value.status_code, refused.value.code) == (409, "invoice_checksum_mismatch"), name

    assert (again.status_code, error_code(again)) == (409, "invoice_checksum_mismatch")
    assert invoice_trace(tampered.id) == after_void  # later refusals write nothing at all
    assert after_void["row"]["status"] == InvoiceStatus.OPEN
    assert _payments(tampered) == 0  # no payment row, applied or held


# --- the hosted page ---------------------------------------------------------------------------


def test_the_hosted_page_says_it_cannot_be_paid_and_shows_nothing_of_the_invoice(
    pay_link: tuple[Invoice, str],
) -> None:
    tampered, token = pay_link

    response = _page(token)

    text = response.content.decode()
    assert response.status_code == 409
    assert "This invoice cannot be paid" in text
    assert "Contact Tasmanian Cloud Pty Ltd" in text  # the seller, from settings
    for shown_on_an_intact_page in (
        "AUD",  # no amount at all: not the tampered 0.01, not the signed 103.40
        "0.01",
        "103.40",
        "Amount due",
        "Total",
        "GST",
        "VPS large, 1 month",
        "IPv4 address",
        str(tampered.number),
        "<table",
    ):
        assert shown_on_an_intact_page not in text, shown_on_an_intact_page
    assert "no-store" in response.headers["Cache-Control"]
    assert response.headers["X-Robots-Tag"] == "noindex, nofollow"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert invoice_trace(tampered.id)["mismatch_rows"] == 1  # the page's read recorded it


def test_an_intact_invoice_of_the_same_customer_still_shows_its_amounts(committed_db: None) -> None:
    invoice = _new_invoice()

    response = _page(pay_link_token(invoice=invoice))

    assert response.status_code == 200
    assert response.content.decode().count("AUD 103.40") == 2  # total and amount due
    assert invoice_trace(invoice.id)["mismatch_rows"] == 0


# --- detected once, audited and alerted once -----------------------------------------------


def test_the_first_detection_is_audited_and_alerted_once_however_often_it_is_seen(
    api: O2SClient, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with contextlib.suppress(CommandError):  # earlier tests' tampered invoices are recorded first
        call_command("verify_invoice_checksums")
    invoice = _new_invoice()
    token = pay_link_token(invoice=invoice)
    tampered = _tampered(invoice)
    metric_before = _mismatches_metric()
    caplog.set_level(logging.INFO)
    admin = _admin_client()

    api.get(f"{URL}{tampered.id}/")  # the first detection: a read
    api.get(f"{URL}{tampered.id}/")
    api.get(URL, {"customer": str(tampered.customer_id)})
    _page(token)
    _page(token)
    api.post(f"{URL}{tampered.id}/void/", {})
    api.post(f"{URL}{tampered.id}/void/", {"reason": "again"})
    admin.get(reverse("admin:invoices_invoice_change", args=[tampered.pk]))
    admin.get(reverse("admin:invoices_invoice_changelist"), {"checksum": "failed"})
    with rls.acting_as(OBSERVER):
        for _ in range(2):
            with pytest.raises(InvoiceChecksumMismatchError):
                pay_invoice(tampered, Money(1, "AUD"), f"p-{tampered.id}", principal=OBSERVER)
            with pytest.raises(InvoiceChecksumMismatchError):
                invoice_mark_uncollectible(principal=OBSERVER, invoice_id=tampered.id, reason="written off")
            with pytest.raises(InvoiceChecksumMismatchError):
                start_card_payment(tampered, principal=OBSERVER)
    for _ in range(2):
        with pytest.raises(CommandError, match="mismatches"):
            call_command("verify_invoice_checksums")
        assert f"MISMATCH invoice {tampered.number} ({tampered.id})" in capsys.readouterr().err  # every run

    assert mismatch_events(tampered.id) == 1
    alerts = _alerts(caplog, tampered)
    assert [record.levelno for record in alerts] == [logging.CRITICAL]
    assert alerts[0].getMessage().startswith(f"ALERT invoice {tampered.number} ({tampered.id}) fails its checksum")
    assert _mismatches_metric() - metric_before == 1
    with rls.acting_as(OBSERVER):
        recorded = InvoiceChecksumMismatch.objects.get(invoice_id=tampered.id)
    assert (recorded.customer_id, recorded.attempted, recorded.checksum_key_id) == (
        tampered.customer_id,
        "o2s_api_read",
        tampered.checksum_key_id,
    )
    assert recorded.detected_by.startswith("api_key:")
    assert invoice_trace(tampered.id)["row"]["status"] == InvoiceStatus.OPEN
    assert invoice_trace(tampered.id)["outbox"] == 0
    assert _payments(tampered) == 0


def test_concurrent_first_detections_record_audit_and_alert_once(
    committed_db: None, caplog: pytest.LogCaptureFixture
) -> None:
    tampered = _tampered(_new_invoice())
    metric_before = _mismatches_metric()
    caplog.set_level(logging.INFO)
    workers = 6
    start = threading.Barrier(workers)
    firsts: list[bool] = []
    errors: list[BaseException] = []

    def detect(index: int) -> None:
        principal = SystemPrincipal(label=f"test:detector-{index}")
        try:
            with rls.acting_as(principal):
                start.wait(timeout=10)
                firsts.append(invoice_checksum_mismatch_record(principal=principal, invoice=tampered, attempted="read"))
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=detect, args=(index,)) for index in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert sorted(firsts) == [False] * (workers - 1) + [True]
    assert invoice_trace(tampered.id)["mismatch_rows"] == 1
    assert mismatch_events(tampered.id) == 1
    assert len(_alerts(caplog, tampered)) == 1
    assert _mismatches_metric() - metric_before == 1


def test_the_sweep_reports_a_mismatch_on_every_run_and_audits_and_alerts_it_once(
    committed_db: None, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with contextlib.suppress(CommandError):  # earlier tests' tampered invoices are recorded first
        call_command("verify_invoice_checksums")
    tampered = _tampered(_new_invoice())
    metric_before = _mismatches_metric()
    caplog.set_level(logging.INFO)

    for _ in range(3):
        with pytest.raises(CommandError, match="mismatches"):
            call_command("verify_invoice_checksums")
        assert f"MISMATCH invoice {tampered.number} ({tampered.id})" in capsys.readouterr().err

    assert mismatch_events(tampered.id) == 1
    assert len(_alerts(caplog, tampered)) == 1
    assert _mismatches_metric() - metric_before == 1
    with rls.acting_as(OBSERVER):
        recorded = InvoiceChecksumMismatch.objects.get(invoice_id=tampered.id)
    assert (recorded.attempted, recorded.detected_by) == ("verify", "system:command:verify_invoice_checksums")
