"""The bank transfer admin over HTTP: billing records transfers, imports statements and
resolves lines (audited as themselves); support is refused (403) and nothing is written."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from gateways.bank_transfer.references import reference_print
from gateways.bank_transfer.statements import MAX_BYTES
from gateways.models import BankStatementImport, BankStatementLine, Payment
from invoices.models import Invoice
from paymenter import rls
from tests.factories import make_customer, make_invoice
from tests.gateways.bank_transfer.helpers import (
    READER,
    invoice_now,
    reference_of,
    side_effects,
    staff_client,
    statement_bytes,
    typo_of,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _bank_admin_urls(settings: Any) -> None:
    settings.ROOT_URLCONF = "tests.gateways.bank_transfer.urls"


def _urls() -> dict[str, str]:
    return {
        "record": reverse("admin:gateways_bank_transfer_record"),
        "lines": reverse("admin:gateways_bankstatementline_changelist"),
        "imports": reverse("admin:gateways_bankstatementimport_changelist"),
        "upload": reverse("admin:gateways_bankstatementimport_add"),
    }


def _invoice(unit_minor: int = 10000) -> Invoice:
    return make_invoice(make_customer(), lines=[("Managed hosting, 1 month", 1, unit_minor)])


def _transfer(invoice: Invoice, **overrides: str) -> dict[str, str]:
    form = {
        "payment_reference": reference_print(reference_of(invoice)),
        "amount": "50.00",
        "currency": "AUD",
        "received_on": "2026-03-03",
        "bank_reference": "CBA RECEIPT 4411",
    }
    form.update(overrides)
    return form


def _upload(client: Client, content: bytes, layout: str = "auto") -> Any:
    return client.post(
        _urls()["upload"], {"file": SimpleUploadedFile("CSVData.csv", content, "text/csv"), "layout": layout}
    )


# --- record a transfer by hand ---------------------------------------------------------------


def test_billing_records_a_transfer_and_is_audited_as_themselves() -> None:
    client, user = staff_client("billing")
    invoice = _invoice()

    page = client.get(_urls()["lines"])
    assert page.status_code == 200
    assert b'id="record-transfer-link"' in page.content
    assert client.get(_urls()["record"]).status_code == 200
    response = client.post(_urls()["record"], _transfer(invoice))

    assert response.status_code == 302
    assert invoice_now(invoice).amount_paid_minor == 5000
    with rls.acting_as(READER):
        payment = Payment.objects.get(invoice=invoice)
        audit = AuditEvent.objects.get(action="bank_transfer.recorded", object_id=str(invoice.id))
        ledger = AuditEvent.objects.get(action="payment.recorded", object_id=str(invoice.id))
    assert (payment.gateway, payment.status, payment.amount_minor) == ("bank_transfer", "applied", 5000)
    assert (audit.actor_type, audit.actor_id) == (ledger.actor_type, ledger.actor_id) == ("staff", str(user.pk))
    assert audit.payload["bank_reference"] == "CBA RECEIPT 4411"
    listed = client.get(_urls()["lines"]).content.decode()
    assert "Recorded by staff by hand" in listed
    assert reference_print(reference_of(invoice)) in listed


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("payment_reference", "typo", "mistyped"),
        ("payment_reference", "INV-2026-000001", "not a payment reference"),
        ("amount", "12.345", "not an amount"),
        ("amount", "-5", "not an amount"),
        ("received_on", "yesterday", "Enter a valid date"),
    ],
)
def test_a_refused_transfer_is_shown_on_the_form_and_nothing_is_written(field: str, value: str, shown: str) -> None:
    client, _ = staff_client("billing")
    invoice = _invoice()
    typed = reference_print(typo_of(reference_of(invoice))) if value == "typo" else value
    before = side_effects()

    response = client.post(_urls()["record"], _transfer(invoice, **{field: typed}))

    assert response.status_code == 200
    assert shown in response.content.decode()
    assert side_effects() == before


def test_the_same_transfer_twice_is_refused_on_the_form() -> None:
    client, _ = staff_client("billing")
    invoice = _invoice()
    client.post(_urls()["record"], _transfer(invoice))
    before = side_effects()

    response = client.post(_urls()["record"], _transfer(invoice))

    assert response.status_code == 200
    assert b"already recorded" in response.content
    assert side_effects() == before


def test_support_cannot_record_a_transfer_and_nothing_is_written() -> None:
    client, _ = staff_client("support")
    invoice = _invoice()
    before = side_effects()

    assert client.get(_urls()["record"]).status_code == 403
    assert client.post(_urls()["record"], _transfer(invoice)).status_code == 403
    assert client.get(_urls()["lines"]).status_code == 403  # lines name payers

    assert side_effects() == before
    assert invoice_now(invoice).amount_paid_minor == 0


def test_a_post_without_the_csrf_token_is_refused_and_nothing_is_written() -> None:
    _, user = staff_client("billing")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    invoice = _invoice()
    before = side_effects()

    assert client.post(_urls()["record"], _transfer(invoice)).status_code == 403

    assert side_effects() == before


# --- import a statement ---------------------------------------------------------------------------


def _three_invoices() -> tuple[Invoice, Invoice, Invoice]:
    return _invoice(10000), _invoice(10000), _invoice(1000)


def test_billing_imports_a_statement_and_sees_what_waits_for_staff() -> None:
    client, user = staff_client("billing")
    a, b, c = _three_invoices()

    assert client.get(_urls()["upload"]).status_code == 200
    response = _upload(client, statement_bytes(a=a, b=b, c=c))

    assert response.status_code == 302
    with rls.acting_as(READER):
        statement = BankStatementImport.objects.get(imported_by=user)
    assert response["Location"].endswith(f"?statement__id__exact={statement.pk}")
    assert (statement.layout, statement.lines_new, statement.lines_matched) == ("commbank", 8, 4)
    listed = client.get(response["Location"])
    assert listed.status_code == 200
    assert listed.content.decode().count('name="_selected_action"') == 8
    waiting = client.get(_urls()["lines"] + "?needs_staff=yes")
    assert waiting.status_code == 200
    for label in ("Reference fails its check digits", "Reference of no invoice here", "More than one reference"):
        assert label in waiting.content.decode()
    assert client.get(_urls()["imports"]).status_code == 200
    assert client.get(reverse("admin:gateways_bankstatementimport_change", args=[statement.pk])).status_code == 200
    assert invoice_now(a).amount_paid_minor == 8000


def test_a_garbage_upload_is_refused_on_the_form_and_nothing_is_written() -> None:
    client, _ = staff_client("billing")
    before = side_effects()

    response = _upload(client, b"\x00\x01\x02 not a csv")

    assert response.status_code == 200
    assert b"not a text file" in response.content
    assert side_effects() == before


def test_an_upload_over_the_size_cap_is_refused_on_the_form_and_nothing_is_written() -> None:
    client, _ = staff_client("billing")
    before = side_effects()

    response = _upload(client, b"05/03/2026,+10.00,A,+10.00\n" * (MAX_BYTES // 27 + 1))

    assert response.status_code == 200
    assert b"export a shorter period" in response.content
    assert side_effects() == before


def test_support_cannot_import_a_statement_and_nothing_is_written() -> None:
    client, _ = staff_client("support")
    a, b, c = _three_invoices()
    before = side_effects()

    assert client.get(_urls()["upload"]).status_code == 403
    assert _upload(client, statement_bytes(a=a, b=b, c=c)).status_code == 403
    assert client.get(_urls()["imports"]).status_code == 403

    assert side_effects() == before


# --- resolve and ignore lines --------------------------------------------------------------------


def _imported_by_billing() -> tuple[Client, tuple[Invoice, Invoice, Invoice], BankStatementImport]:
    client, user = staff_client("billing")
    invoices = _three_invoices()
    a, b, c = invoices
    assert _upload(client, statement_bytes(a=a, b=b, c=c)).status_code == 302
    with rls.acting_as(READER):
        return client, invoices, BankStatementImport.objects.get(imported_by=user)


def _line(statement: BankStatementImport, status: str) -> BankStatementLine:
    with rls.acting_as(READER):
        return BankStatementLine.objects.get(statement=statement, status=status)


def test_billing_resolves_a_mistyped_line_through_the_intermediate_page() -> None:
    client, (_, b, _), statement = _imported_by_billing()
    typo = _line(statement, "mistyped")
    action = {"action": "resolve_line", "_selected_action": [str(typo.pk)]}

    asked = client.post(_urls()["lines"], action)
    assert asked.status_code == 200
    assert b'id="resolve-line-form"' in asked.content
    assert b"TRANSFER FROM ACME PTY LTD" in asked.content
    done = client.post(_urls()["lines"], {**action, "apply": "1", "invoice": b.number})

    assert done.status_code == 302
    with rls.acting_as(READER):
        resolved = BankStatementLine.objects.get(pk=typo.pk)
    assert (resolved.status, resolved.invoice_id) == ("resolved", b.id)
    assert invoice_now(b).amount_paid_minor == 2000 + 5500  # this line, and B's own line of the statement


def test_resolving_to_an_unknown_invoice_shows_the_refusal_and_writes_nothing() -> None:
    client, _, statement = _imported_by_billing()
    line = _line(statement, "unmatched")
    before = side_effects()

    response = client.post(
        _urls()["lines"],
        {"action": "resolve_line", "_selected_action": [str(line.pk)], "apply": "1", "invoice": "INV-2099-999999"},
    )

    assert response.status_code == 200
    assert b"No invoice is numbered" in response.content
    assert side_effects() == before


def test_billing_ignores_lines_and_support_cannot() -> None:
    client, _, statement = _imported_by_billing()
    line = _line(statement, "unmatched")
    action = {"action": "ignore_lines", "_selected_action": [str(line.pk)]}
    support, _ = staff_client("support")
    before = side_effects()

    assert support.post(_urls()["lines"], action).status_code == 403
    assert side_effects() == before
    assert client.post(_urls()["lines"], action).status_code == 302

    assert _line(statement, "ignored").pk == line.pk
    with rls.acting_as(READER):
        assert AuditEvent.objects.filter(action="bank_statement.line_ignored", object_id=str(line.pk)).count() == 1


def test_lines_and_imports_are_read_only_for_everyone() -> None:
    client, _, statement = _imported_by_billing()
    line = _line(statement, "unmatched")
    before = side_effects()

    page = client.get(reverse("admin:gateways_bankstatementline_change", args=[line.pk]))
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert client.post(reverse("admin:gateways_bankstatementline_change", args=[line.pk]), {}).status_code == 403
    assert (
        client.post(reverse("admin:gateways_bankstatementline_delete", args=[line.pk]), {"post": "yes"}).status_code
        == 403
    )
    assert client.get(reverse("admin:gateways_bankstatementline_add")).status_code == 403

    assert side_effects() == before
