"""The staff admin and invoice integrity: a tampered invoice's page carries a banner, the
list finds tampered invoices, and the actions refuse a draft or a tampered invoice with a
message and change nothing.

An invoice is "tampered" here by re-keying: invoices signed before ``_rekey`` no longer
verify, those signed after do (tests/invoices/test_checksum_mismatch.py tampers as the
table owner, on committed data)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from django.test import Client

from audit.models import AuditEvent
from billing.models import Customer
from invoices.admin import TAMPERED_BANNER
from invoices.models import Invoice, InvoiceChecksumMismatch, InvoiceStatus
from paymenter.models import OutboxMessage
from paymenter.principals import SystemPrincipal
from tests.admin.test_admin import INVOICE_CHANGELIST, invoice_url, staff_client
from tests.factories import make_customer, make_invoice

pytestmark = pytest.mark.django_db

BANNER_START = "INTEGRITY CHECK FAILED"


@pytest.fixture
def customer(system_principal: SystemPrincipal) -> Customer:
    return make_customer()


def _rekey(settings: Any) -> None:
    settings.INVOICE_CHECKSUM_KEYS = "dev1:" + base64.b64encode(b"another key: old signatures fail!").decode()


def _action(client: Client, action: str, *invoices: Invoice) -> Any:
    return client.post(
        INVOICE_CHANGELIST, {"action": action, "_selected_action": [str(invoice.pk) for invoice in invoices]}
    )


def _messages(response: Any) -> list[str]:
    return [str(message) for message in response.wsgi_request._messages]


def _written(invoice: Invoice) -> dict[str, Any]:
    return {
        "row": Invoice.objects.filter(pk=invoice.pk).values().get(),
        "audit": list(AuditEvent.objects.filter(object_id=str(invoice.pk)).values_list("action", flat=True)),
        "outbox": OutboxMessage.objects.count(),
    }


def test_the_change_page_of_a_tampered_invoice_carries_a_banner(
    customer: Customer, system_principal: SystemPrincipal, settings: Any
) -> None:
    tampered = make_invoice(customer)
    _rekey(settings)
    intact = make_invoice(customer)
    client, user = staff_client("support")  # any staff who may see invoices sees it

    page = client.get(invoice_url("change", tampered))
    again = client.get(invoice_url("change", tampered))
    intact_page = client.get(invoice_url("change", intact))

    assert page.status_code == 200
    content = page.content.decode()
    assert BANNER_START in content
    assert 'class="error"' in content  # Django's messages list, at the top of the page
    assert TAMPERED_BANNER in content
    assert BANNER_START in again.content.decode()  # on every visit, not only the first
    assert BANNER_START not in intact_page.content.decode()
    recorded = InvoiceChecksumMismatch.objects.get()
    assert (recorded.invoice_id, recorded.attempted, recorded.detected_by) == (
        tampered.pk,
        "admin_view",
        f"staff:{user.pk}",
    )
    assert _written(tampered)["audit"].count("invoice.checksum_mismatch") == 1


def test_tampered_invoices_are_listed_by_the_tampering_filter(
    customer: Customer, system_principal: SystemPrincipal, settings: Any
) -> None:
    tampered = make_invoice(customer)
    _rekey(settings)
    intact = make_invoice(customer)
    draft = make_invoice(customer, issue=False)
    client, _ = staff_client("billing")

    def listed(**params: str) -> set[object]:
        response = client.get(INVOICE_CHANGELIST, params)
        assert "tampering recorded" in response.content.decode()  # the filter is offered
        return {invoice.pk for invoice in response.context["cl"].result_list}

    assert listed(tampered="yes") == set()  # nothing recorded yet
    assert listed(checksum="failed") == {tampered.pk}  # computed per row, and recorded
    assert listed(tampered="yes") == {tampered.pk}
    assert listed(tampered="no") == {intact.pk, draft.pk}


def test_voiding_a_draft_in_the_admin_is_refused_with_a_message_and_changes_nothing(
    customer: Customer, system_principal: SystemPrincipal
) -> None:
    draft = make_invoice(customer, issue=False)
    client, _ = staff_client("admin")
    before = _written(draft)

    response = _action(client, "void_selected", draft)

    assert response.status_code == 302
    assert _messages(response) == [f"Draft {draft.pk}: not changed: An invoice that is draft cannot be voided."]
    assert Invoice.objects.get(pk=draft.pk).status == InvoiceStatus.DRAFT
    assert _written(draft) == before


@pytest.mark.parametrize("action", ["void_selected", "mark_uncollectible_selected"])
def test_the_admin_actions_refuse_a_tampered_invoice_and_change_nothing(
    customer: Customer, system_principal: SystemPrincipal, settings: Any, action: str
) -> None:
    tampered = make_invoice(customer)
    _rekey(settings)
    client, _ = staff_client("admin")
    client.get(invoice_url("change", tampered))  # seen (and recorded) first
    before = _written(tampered)

    response = _action(client, action, tampered)

    assert response.status_code == 302
    assert _messages(response) == [
        f"{tampered.number}: not changed: The invoice failed its integrity check; staff have been alerted."
    ]
    assert _written(tampered) == before  # no state change, no audit event, no outbox message
    assert Invoice.objects.get(pk=tampered.pk).status == InvoiceStatus.OPEN
