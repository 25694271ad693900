"""State rules through the O2S API: a refused transition is a 409 with its own code, and no
database constraint error ever reaches O2S as a 500 (the ``conflict`` backstop)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.db import IntegrityError

from audit.unit_of_work import unit_of_work
from invoices.models import Invoice, InvoiceChecksumMismatch, InvoiceStatus
from o2s.api import views
from paymenter.principals import Principal, SystemPrincipal
from tests.factories import make_customer, make_invoice
from tests.o2s.api_helpers import O2SClient, error_code, make_api_client, side_effects

pytestmark = pytest.mark.usefixtures("db", "system_principal")

URL = "/api/v1/invoices/"


@pytest.fixture
def api(db: None, system_principal: object) -> O2SClient:
    return make_api_client()


@pytest.fixture
def draft(system_principal: SystemPrincipal) -> Invoice:
    return make_invoice(make_customer(), issue=False)


def test_the_api_lists_a_draft_as_unsigned_without_a_pay_url_and_records_no_tampering(
    api: O2SClient, draft: Invoice
) -> None:
    before = side_effects()

    one = api.get(f"{URL}{draft.id}/").json()
    listed = api.get(URL, {"customer": str(draft.customer_id)}).json()["results"]

    assert (one["status"], one["number"], one["checksum_valid"], one["pay_url"]) == ("draft", None, False, None)
    assert [(item["id"], item["pay_url"]) for item in listed] == [(str(draft.id), None)]
    assert InvoiceChecksumMismatch.objects.count() == 0  # a draft is unsigned, not tampered
    assert side_effects() == before


@pytest.mark.parametrize("idempotency_key", [None, "void-the-draft-1"])
def test_voiding_a_draft_is_409_invalid_state_and_writes_nothing(
    api: O2SClient, draft: Invoice, idempotency_key: str | None
) -> None:
    headers = {"HTTP_IDEMPOTENCY_KEY": idempotency_key} if idempotency_key else {}
    before = side_effects()

    response = api.post(f"{URL}{draft.id}/void/", {"reason": "ordered by mistake"}, **headers)

    assert (response.status_code, error_code(response)) == (409, "invoice_invalid_state"), response.content
    assert response.json()["error"]["message"] == "An invoice that is draft cannot be voided."
    stored = Invoice.objects.get(id=draft.id)
    assert (stored.status, stored.voided_at, stored.void_reason) == (InvoiceStatus.DRAFT, None, "")
    assert side_effects() == before  # no invoice change, audit event, outbox message or stored response


def _void_as_before_the_state_rule(*, principal: Principal, invoice_id: Any, reason: str = "") -> Invoice:
    """The old ``invoice_void`` of a draft: it let the database constraint
    ``invoice_issued_has_number_and_checksum`` refuse (an ``IntegrityError``)."""
    with unit_of_work(principal):
        invoice = Invoice.objects.select_for_update(no_key=True).get(id=invoice_id)
        invoice.status = InvoiceStatus.VOID
        invoice.void_reason = reason
        invoice.save(update_fields=["status", "void_reason"])
    return invoice


def test_an_integrity_error_is_answered_409_conflict_logged_and_writes_nothing(
    api: O2SClient, draft: Invoice, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(views, "invoice_void", _void_as_before_the_state_rule)
    before = side_effects()

    with caplog.at_level(logging.ERROR, logger="paymenter.api_errors"):
        response = api.post(f"{URL}{draft.id}/void/", {"reason": "ordered by mistake"}, HTTP_IDEMPOTENCY_KEY="k-1")

    assert response.status_code == 409
    assert response.json() == {
        "error": {
            "code": "conflict",
            "message": "The request conflicts with the current state of the data.",
            "fields": {},
        }
    }
    assert "invoice_issued_has_number_and_checksum" not in response.content.decode()  # no internals leak
    logged = [record for record in caplog.records if record.name == "paymenter.api_errors"]
    assert [record.levelno for record in logged] == [logging.ERROR]
    assert logged[0].exc_info is not None
    assert isinstance(logged[0].exc_info[1], IntegrityError)
    assert "invoice_issued_has_number_and_checksum" in str(logged[0].exc_info[1])
    assert Invoice.objects.get(id=draft.id).status == InvoiceStatus.DRAFT
    assert side_effects() == before
