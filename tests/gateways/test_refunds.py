"""Refunds and credit notes: staff refund a payment fully or partly; each refund issues a
credit note in its own gapless series with the GST reversed, frozen and checksummed; the
invoice moves to partially refunded / refunded and O2S and the customer hear of it once.
Nobody refunds more than was paid, not even with two clicks at once; support and
customers cannot refund; a refusal writes nothing."""

from __future__ import annotations

import base64
import contextlib
import re
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from gateways.errors import (
    InvalidRefundError,
    RefundExceedsRefundableError,
    RefundForbiddenError,
    RefundNotAllowedError,
)
from gateways.models import Payment, Refund, RefundOrigin, RefundStatus
from gateways.services import refund_request
from invoices import credit_notes
from invoices.errors import InvoiceChecksumMismatchError
from invoices.models import CreditNote, CreditNoteLine, Invoice
from paymenter import rls
from paymenter.card_numbers import CardNumberNotAllowedError
from paymenter.models import OutboxMessage
from paymenter.money import Money
from paymenter.principals import CustomerPrincipal, StaffPrincipal, SystemPrincipal
from tests.factories import make_customer, make_invoice, pay_invoice

pytestmark = pytest.mark.django_db

SYSTEM = SystemPrincipal(label="test:refunds")
TOTAL = 3190  # the factory invoice: AUD 20.00 + 2 x 4.50 + 10% GST (GST 290)
CN_NUMBER = re.compile(r"^CN-\d{4}-\d{6}$")


@pytest.fixture(autouse=True)
def _bank_transfer_enabled(settings: Any) -> None:
    settings.BANK_TRANSFER_ACCOUNT_NUMBER = "12345678"
    settings.BANK_TRANSFER_BSB = "062-000"
    settings.BANK_TRANSFER_ACCOUNT_NAME = "Tasmanian Cloud Pty Ltd"


def _staff_user(role: str = "billing") -> User:
    user = User.objects.create_user(username=f"{role}-{uuid.uuid4().hex[:8]}", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


def _principal(user: User) -> StaffPrincipal:
    return StaffPrincipal(user_id=int(user.pk), username=user.username)


def _paid(minor: int | None = None) -> tuple[Invoice, Payment]:
    invoice = make_invoice(make_customer())
    payment = pay_invoice(invoice)
    with rls.acting_as(SYSTEM):
        return Invoice.objects.get(pk=invoice.pk), payment


def _refund(payment: Payment, minor: int, user: User | None = None, reason: str = "customer asked") -> Refund:
    user = user or _staff_user()
    return refund_request(
        principal=_principal(user), payment_id=payment.pk, amount=Money(minor, "AUD"), reason=reason, user_id=user.pk
    )


def _state(invoice: Invoice) -> dict[str, Any]:
    with rls.acting_as(SYSTEM):
        stored = Invoice.objects.get(pk=invoice.pk)
        return {
            "status": stored.status,
            "paid": stored.amount_paid_minor,
            "refunded": stored.amount_refunded_minor,
            "refunds": list(Refund.objects.filter(invoice_id=invoice.pk).values_list("status", "amount_minor")),
            "credit_notes": list(
                CreditNote.objects.filter(invoice_id=invoice.pk)
                .order_by("number")
                .values_list("total_minor", "tax_minor", "subtotal_minor")
            ),
        }


def _counts() -> dict[str, int]:
    with rls.acting_as(SYSTEM):
        return {
            "refunds": Refund.objects.count(),
            "credit_notes": CreditNote.objects.count(),
            "audit": AuditEvent.objects.count(),
            "outbox": OutboxMessage.objects.count(),
        }


def _events(invoice: Invoice) -> list[tuple[str, str]]:
    with rls.acting_as(SYSTEM):
        return [
            (message.topic, message.payload["type"])
            for message in OutboxMessage.objects.filter(ordering_key=f"invoice:{invoice.id}").order_by("id")
            if message.payload["type"] not in ("invoice.issued", "invoice.paid")
        ]


def test_a_full_refund_issues_a_credit_note_reversing_all_the_gst_and_refunds_the_invoice() -> None:
    invoice, payment = _paid()

    refund = _refund(payment, TOTAL)

    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.gateway_refund_id == f"bank-payout:{refund.id}"
    assert _state(invoice) == {
        "status": "refunded",
        "paid": TOTAL,
        "refunded": TOTAL,
        "refunds": [("succeeded", TOTAL)],
        "credit_notes": [(TOTAL, 290, 2900)],
    }
    with rls.acting_as(SYSTEM):
        note = CreditNote.objects.get(invoice_id=invoice.pk)
        lines = list(note.lines.order_by("position").values_list("total_minor", "tax_minor"))
        assert CN_NUMBER.match(note.number)
        assert Refund.objects.get(pk=refund.pk).credit_note_id == note.pk
        assert credit_notes.is_valid(note)
        assert note.buyer_details == invoice.buyer_details
        actions = list(
            AuditEvent.objects.filter(object_id=str(invoice.id)).order_by("sequence").values_list("action", flat=True)
        )
    assert lines == [(2200, 200), (990, 90)]
    assert actions[-4:] == ["refund.requested", "credit_note.issued", "invoice.refunded", "refund.succeeded"]
    assert _events(invoice) == [("o2s.callback", "invoice.refunded"), ("portal.receipt", "invoice.refunded")]


def test_partial_refunds_then_the_rest_number_their_credit_notes_without_gaps() -> None:
    invoice, payment = _paid()

    first = _refund(payment, 1000)
    assert _state(invoice)["status"] == "partially_refunded"
    second = _refund(payment, TOTAL - 1000)

    state = _state(invoice)
    assert (state["status"], state["refunded"]) == ("refunded", TOTAL)
    assert sum(tax for _, tax, _ in state["credit_notes"]) == 290
    with rls.acting_as(SYSTEM):
        numbers = [Refund.objects.get(pk=r.pk).credit_note.number for r in (first, second)]  # type: ignore[union-attr]
    assert int(numbers[1][-6:]) == int(numbers[0][-6:]) + 1
    assert _events(invoice) == [
        ("o2s.callback", "invoice.partially_refunded"),
        ("portal.receipt", "invoice.partially_refunded"),
        ("o2s.callback", "invoice.refunded"),
        ("portal.receipt", "invoice.refunded"),
    ]


@pytest.mark.parametrize(
    ("minor", "reason", "error"),
    [
        (TOTAL + 1, "too much", RefundExceedsRefundableError),
        (0, "nothing", InvalidRefundError),
        (100, "card 4111 1111 1111 1111 refund", CardNumberNotAllowedError),
        (100, "x" * 501, InvalidRefundError),
    ],
)
def test_a_refund_that_cannot_be_made_is_refused_and_writes_nothing(
    minor: int, reason: str, error: type[Exception]
) -> None:
    invoice, payment = _paid()
    user = _staff_user()
    before = (_counts(), _state(invoice))

    with pytest.raises(error):
        _refund(payment, minor, user, reason=reason)

    assert (_counts(), _state(invoice)) == before


def test_more_than_is_left_after_earlier_refunds_is_refused() -> None:
    invoice, payment = _paid()
    _refund(payment, 3000)
    before = (_counts(), _state(invoice))

    with pytest.raises(RefundExceedsRefundableError, match=r"at most AUD 1\.90"):
        _refund(payment, 191)

    assert (_counts(), _state(invoice)) == before


def test_a_payment_refunded_in_full_has_nothing_left_whatever_its_invoice_now_says() -> None:
    """The second of two clicks, arriving after the first finished (the invoice is now
    ``refunded``), gets the same answer as one arriving while it was pending."""
    invoice, payment = _paid()
    _refund(payment, TOTAL)
    before = (_counts(), _state(invoice))

    with pytest.raises(RefundExceedsRefundableError, match=r"at most AUD 0\.00"):
        _refund(payment, TOTAL)

    assert (_counts(), _state(invoice)) == before


def test_a_partly_paid_invoice_is_not_refunded() -> None:
    invoice = make_invoice(make_customer())
    payment = pay_invoice(invoice, 1000)
    before = _counts()

    with pytest.raises(RefundNotAllowedError):
        _refund(payment, 1000)

    assert _counts() == before


def test_a_tampered_invoice_is_never_refunded(settings: Any) -> None:
    invoice, payment = _paid()
    settings.INVOICE_CHECKSUM_KEYS = "dev1:" + base64.b64encode(b"an-attacker-does-not-have-the-key!!").decode()
    user = _staff_user()

    with pytest.raises(InvoiceChecksumMismatchError):
        _refund(payment, 100, user)

    with rls.acting_as(SYSTEM):
        assert Refund.objects.filter(invoice_id=invoice.pk).count() == 0
        assert CreditNote.objects.filter(invoice_id=invoice.pk).count() == 0
        assert Invoice.objects.get(pk=invoice.pk).amount_refunded_minor == 0


def test_a_refund_of_a_held_payment_needs_no_credit_note_and_settles_the_held_payment() -> None:
    invoice, _ = _paid()
    held = pay_invoice(invoice, 500)  # the invoice is paid: held as not payable
    assert held.status == "held"

    refund = _refund(held, 500)

    assert (refund.status, refund.credit_note_id) == (RefundStatus.SUCCEEDED, None)
    with rls.acting_as(SYSTEM):
        assert Payment.objects.get(pk=held.pk).resolved_at is not None
    assert _state(invoice)["status"] == "paid"


def test_credit_notes_and_their_lines_can_be_neither_changed_nor_deleted() -> None:
    _, payment = _paid()
    refund = _refund(payment, 1000)
    with rls.acting_as(SYSTEM):
        note = CreditNote.objects.get(pk=str(refund.credit_note_id))
        for statement in (
            "UPDATE invoices_creditnote SET total_minor = 1 WHERE id = %s",
            "UPDATE invoices_creditnote SET reason = 'edited' WHERE id = %s",
            "DELETE FROM invoices_creditnote WHERE id = %s",
            "UPDATE invoices_creditnoteline SET tax_minor = 0 WHERE credit_note_id = %s",
            "DELETE FROM invoices_creditnoteline WHERE credit_note_id = %s",
        ):
            with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(statement, [note.pk])
        assert CreditNoteLine.objects.filter(credit_note=note).count() == 2


def test_a_customer_sees_only_its_own_credit_notes_and_refunds() -> None:
    _, payment = _paid()
    refund = _refund(payment, 1000)
    other = make_customer()
    with rls.acting_as(CustomerPrincipal(user_id=1, customer_ids=frozenset({other.id}))):
        assert CreditNote.objects.filter(pk=str(refund.credit_note_id)).count() == 0
        assert CreditNoteLine.objects.count() == 0
        assert Refund.objects.filter(pk=refund.pk).count() == 0
    with rls.acting_as(CustomerPrincipal(user_id=1, customer_ids=frozenset({payment.customer_id}))):
        assert CreditNote.objects.filter(pk=str(refund.credit_note_id)).count() == 1


# --- staff in the admin --------------------------------------------------------------------


def _client(role: str) -> tuple[Client, User]:
    user = _staff_user(role)
    client = Client()
    client.force_login(user)
    return client, user


@pytest.mark.parametrize("role", ["admin", "billing"])
def test_billing_and_admin_refund_from_the_payment_page(role: str) -> None:
    invoice, payment = _paid()
    client, _ = _client(role)
    url = reverse("admin:gateways_payment_refund", args=[payment.pk])

    page = client.get(url)
    assert page.status_code == 200
    assert "AUD 31.90" in page.content.decode()
    done = client.post(url, {"amount": "10.00", "reason": "downgrade"}, follow=True)

    assert done.status_code == 200
    assert "credit note CN-" in done.content.decode()
    assert _state(invoice)["refunds"] == [("succeeded", 1000)]


def test_support_cannot_refund_and_nothing_is_written() -> None:
    invoice, payment = _paid()
    client, _ = _client("support")
    before = (_counts(), _state(invoice))
    url = reverse("admin:gateways_payment_refund", args=[payment.pk])

    assert client.get(url).status_code == 403
    assert client.post(url, {"amount": "10.00", "reason": "x"}).status_code == 403
    assert "refund-link" not in client.get(reverse("admin:gateways_payment_change", args=[payment.pk])).content.decode()
    assert (_counts(), _state(invoice)) == before


def test_the_refund_page_shows_a_refusal_with_its_code_and_writes_nothing() -> None:
    invoice, payment = _paid()
    client, _ = _client("billing")
    before = (_counts(), _state(invoice))

    page = client.post(
        reverse("admin:gateways_payment_refund", args=[payment.pk]), {"amount": "31.91", "reason": ""}, follow=True
    )

    assert "refund_exceeds_refundable" in page.content.decode()
    for amount in ("abc", "-1", "1.234", "1e3"):
        bad = client.post(reverse("admin:gateways_payment_refund", args=[payment.pk]), {"amount": amount})
        assert bad.status_code == 200
        assert "errorlist" in bad.content.decode()
    assert (_counts(), _state(invoice)) == before


# --- money properties ----------------------------------------------------------------------


@hypothesis_settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payments=st.lists(st.integers(min_value=1, max_value=TOTAL), min_size=1, max_size=4),
    refunds=st.lists(st.integers(min_value=1, max_value=TOTAL + 10), max_size=5),
)
def test_paid_refunded_and_due_always_add_up(payments: list[int], refunds: list[int]) -> None:
    user = _staff_user()
    with transaction.atomic():
        invoice = make_invoice(make_customer())
        rows: list[Payment] = []
        for minor in [*payments, TOTAL]:  # partials, then whatever completes it
            with rls.acting_as(SYSTEM):
                due = Invoice.objects.get(pk=invoice.pk).amount_due_minor
            if due:
                rows.append(pay_invoice(invoice, min(minor, due)))
        refunded_per_payment = dict.fromkeys((p.pk for p in rows), 0)
        for step, minor in enumerate(refunds):
            payment = rows[step % len(rows)]
            left = payment.amount_minor - refunded_per_payment[payment.pk]
            try:
                _refund(payment, minor, user)
            except RefundExceedsRefundableError:
                assert minor > left
            else:
                assert minor <= left
                refunded_per_payment[payment.pk] += minor
            with rls.acting_as(SYSTEM):
                stored = Invoice.objects.get(pk=invoice.pk)
                notes = list(CreditNote.objects.filter(invoice_id=invoice.pk))
                note_lines = list(CreditNoteLine.objects.filter(credit_note__invoice_id=invoice.pk))
            assert (stored.amount_paid_minor, stored.amount_due_minor) == (TOTAL, 0)
            assert 0 <= stored.amount_refunded_minor == sum(refunded_per_payment.values()) <= stored.amount_paid_minor
            assert sum(n.total_minor for n in notes) == stored.amount_refunded_minor
            for note in notes:
                mine = [line for line in note_lines if line.credit_note_id == note.pk]
                assert note.tax_minor == sum(line.tax_minor for line in mine)
                assert note.total_minor == sum(line.total_minor for line in mine)
            assert sum(n.tax_minor for n in notes) <= stored.tax_minor
            expected = (
                "paid"
                if not stored.amount_refunded_minor
                else ("refunded" if stored.amount_refunded_minor == TOTAL else "partially_refunded")
            )
            assert stored.status == expected
            if stored.status == "refunded":
                assert sum(n.tax_minor for n in notes) == stored.tax_minor
        transaction.set_rollback(True)


def test_refund_origin_is_staff_for_a_refund_asked_for_here() -> None:
    _, payment = _paid()
    assert _refund(payment, 100).origin == RefundOrigin.STAFF


@pytest.mark.parametrize("role", ["support", None])
def test_the_service_itself_refuses_a_user_without_the_refund_right(role: str | None) -> None:
    """Defence in depth: whatever channel calls it, only billing and admin refund."""
    invoice, payment = _paid()
    user = _staff_user(role) if role else User.objects.create_user(username=f"nobody-{uuid.uuid4().hex[:6]}")
    before = (_counts(), _state(invoice))

    with pytest.raises(RefundForbiddenError):
        _refund(payment, 100, user)

    assert (_counts(), _state(invoice)) == before


@pytest.mark.parametrize("role", ["admin", "billing", "support"])
def test_every_staff_role_reads_credit_notes_and_nobody_edits_them(role: str) -> None:
    _, payment = _paid()
    refund = _refund(payment, 1000)
    client, _ = _client(role)
    note_url = reverse("admin:invoices_creditnote_change", args=[refund.credit_note_id])

    listing = client.get(reverse("admin:invoices_creditnote_changelist"))
    page = client.get(note_url)

    assert listing.status_code == 200
    assert page.status_code == 200
    assert "AUD 10.00" in listing.content.decode()
    assert client.post(note_url, {"reason": "edited"}).status_code == 403
    assert client.get(reverse("admin:invoices_creditnote_delete", args=[refund.credit_note_id])).status_code == 403
    for url in (reverse("admin:gateways_refund_changelist"), reverse("admin:gateways_dispute_changelist")):
        assert client.get(url).status_code == 200


def test_the_checksum_sweep_reports_a_credit_note_altered_behind_the_triggers(
    settings: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _, payment = _paid()
    refund = _refund(payment, 1000)
    with rls.acting_as(SYSTEM):
        number = CreditNote.objects.get(pk=str(refund.credit_note_id)).number
    with contextlib.suppress(CommandError):  # earlier committed tests may have left tampered invoices
        call_command("verify_invoice_checksums")
    assert f"MISMATCH credit note {number}" not in capsys.readouterr().err

    settings.INVOICE_CHECKSUM_KEYS = "dev1:" + base64.b64encode(b"an-attacker-does-not-have-the-key!!").decode()
    with pytest.raises(CommandError, match="mismatches"):
        call_command("verify_invoice_checksums")

    assert f"MISMATCH credit note {number} ({refund.credit_note_id})" in capsys.readouterr().err
