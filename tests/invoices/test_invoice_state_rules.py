"""Every state transition checks the state itself and refuses with 409
``invoice_invalid_state`` before writing anything: never a database constraint error.
Free-text reasons never take in a card number."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from audit.models import AuditEvent
from gateways.models import Payment
from invoices.errors import InvoiceStateError
from invoices.models import Invoice, InvoiceChecksumMismatch, InvoiceLine, InvoiceStatus
from invoices.services import (
    invoice_issue,
    invoice_mark_uncollectible,
    invoice_void,
)
from paymenter.card_numbers import CardNumberNotAllowedError
from paymenter.models import OutboxMessage
from paymenter.principals import SystemPrincipal
from tests.factories import make_customer, make_invoice, pay_invoice

pytestmark = pytest.mark.usefixtures("db", "system_principal")

CARD = "4242 4242 4242 4242"


def _written(invoice_id: uuid.UUID) -> dict[str, Any]:
    """The invoice row as stored and every table an action could add to."""
    return {
        "row": Invoice.objects.filter(id=invoice_id).values().get(),
        "lines": list(InvoiceLine.objects.filter(invoice_id=invoice_id).order_by("position").values()),
        "audit": AuditEvent.objects.count(),
        "outbox": OutboxMessage.objects.count(),
        "mismatches": InvoiceChecksumMismatch.objects.count(),
        "payments": list(Payment.objects.filter(invoice_id=invoice_id).order_by("created_at").values()),
    }


def _invoice_in(state: str, principal: SystemPrincipal) -> Invoice:
    invoice = make_invoice(make_customer(), issue=state != "draft")
    if state == "void":
        invoice_void(principal=principal, invoice_id=invoice.id)
    elif state == "paid":
        pay_invoice(invoice, principal=principal)
    elif state == "uncollectible":
        invoice_mark_uncollectible(principal=principal, invoice_id=invoice.id, reason="dunning exhausted")
    return Invoice.objects.get(id=invoice.id)


def _void(principal: SystemPrincipal, invoice: Invoice) -> object:
    return invoice_void(principal=principal, invoice_id=invoice.id, reason="ordered by mistake")


def _write_off(principal: SystemPrincipal, invoice: Invoice) -> object:
    return invoice_mark_uncollectible(principal=principal, invoice_id=invoice.id, reason="dunning exhausted")


def _issue(principal: SystemPrincipal, invoice: Invoice) -> object:
    return invoice_issue(principal=principal, invoice_id=invoice.id)


REFUSED: list[tuple[str, Callable[[SystemPrincipal, Invoice], object], str]] = [
    ("void", _void, "draft"),  # never issued: no number, no checksum (was an IntegrityError, a 500)
    ("void", _void, "void"),
    ("void", _void, "paid"),
    ("void", _void, "uncollectible"),
    ("mark_uncollectible", _write_off, "draft"),
    ("mark_uncollectible", _write_off, "void"),
    ("mark_uncollectible", _write_off, "paid"),
    ("mark_uncollectible", _write_off, "uncollectible"),
    ("issue", _issue, "open"),
    ("issue", _issue, "void"),
    ("issue", _issue, "paid"),
    ("issue", _issue, "uncollectible"),
]


@pytest.mark.parametrize(("action", "service", "state"), REFUSED, ids=[f"{a}-from-{s}" for a, _, s in REFUSED])
def test_a_transition_from_a_wrong_state_is_409_invalid_state_and_writes_nothing(
    system_principal: SystemPrincipal, action: str, service: Callable[[SystemPrincipal, Invoice], object], state: str
) -> None:
    invoice = _invoice_in(state, system_principal)
    before = _written(invoice.id)

    with pytest.raises(InvoiceStateError) as refused:
        service(system_principal, invoice)

    assert (refused.value.status_code, refused.value.code) == (409, "invoice_invalid_state")
    assert refused.value.message.startswith(f"An invoice that is {state} cannot be ")
    assert _written(invoice.id) == before


def test_a_draft_cannot_be_voided_it_was_never_issued(system_principal: SystemPrincipal) -> None:
    draft = make_invoice(make_customer(), issue=False)
    before = _written(draft.id)

    with pytest.raises(InvoiceStateError, match="An invoice that is draft cannot be voided"):
        invoice_void(principal=system_principal, invoice_id=draft.id)

    stored = Invoice.objects.get(id=draft.id)
    assert (stored.status, stored.number, stored.voided_at, stored.void_reason) == (InvoiceStatus.DRAFT, None, None, "")
    assert _written(draft.id) == before


@pytest.mark.parametrize("reason", [CARD, f"customer read out {CARD} on the phone", "4242424242424242"])
def test_a_card_number_in_a_void_or_write_off_reason_is_refused_and_writes_nothing(
    system_principal: SystemPrincipal, reason: str
) -> None:
    invoice = make_invoice(make_customer())
    before = _written(invoice.id)

    with pytest.raises(CardNumberNotAllowedError) as voided:
        invoice_void(principal=system_principal, invoice_id=invoice.id, reason=reason)
    with pytest.raises(CardNumberNotAllowedError) as written_off:
        invoice_mark_uncollectible(principal=system_principal, invoice_id=invoice.id, reason=reason)

    for refused in (voided.value, written_off.value):
        assert (refused.status_code, refused.code) == (400, "card_number_not_allowed")
        assert refused.fields == {"reason": ["must not contain a card number"]}
    assert Invoice.objects.get(id=invoice.id).status == InvoiceStatus.OPEN
    assert _written(invoice.id) == before


def test_a_reason_that_only_looks_numeric_is_still_accepted(system_principal: SystemPrincipal) -> None:
    invoice = make_invoice(make_customer())

    voided = invoice_void(principal=system_principal, invoice_id=invoice.id, reason="order 4242 4242 cancelled")

    assert (voided.status, voided.void_reason) == (InvoiceStatus.VOID, "order 4242 4242 cancelled")


PAYMENT_HELD_FROM = ["draft", "void", "paid"]


@pytest.mark.parametrize("state", PAYMENT_HELD_FROM, ids=[f"payment-from-{s}" for s in PAYMENT_HELD_FROM])
def test_money_for_an_invoice_that_cannot_be_paid_is_held_and_changes_nothing_else(
    system_principal: SystemPrincipal, state: str
) -> None:
    """Money cannot be refused (it was already taken): the ledger keeps it as a held payment
    for staff, and the invoice, its lines and its outbox stay as they were."""
    invoice = _invoice_in(state, system_principal)
    before = _written(invoice.id)
    actions_before = _actions(invoice.id)

    payment = pay_invoice(invoice, invoice.total_minor, "pi_state", principal=system_principal)

    after = _written(invoice.id)
    assert (payment.status, payment.held_reason, payment.amount_minor) == (
        "held",
        "invoice_not_payable",
        invoice.total_minor,
    )
    assert [row["id"] for row in after["payments"]] == [*(row["id"] for row in before["payments"]), payment.id]
    assert (after["row"], after["lines"], after["outbox"], after["mismatches"]) == (
        before["row"],
        before["lines"],
        before["outbox"],
        before["mismatches"],
    )
    assert after["audit"] == before["audit"] + 1
    assert _actions(invoice.id) == [*actions_before, "payment.held"]


def _actions(invoice_id: uuid.UUID) -> list[str]:
    return list(
        AuditEvent.objects.filter(object_id=str(invoice_id)).order_by("sequence").values_list("action", flat=True)
    )
