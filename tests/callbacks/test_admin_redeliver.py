"""The outbox in the staff admin: read-only for billing/admin, invisible to support, and
"Redeliver selected" puts dead messages back in the queue through the audited service."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.test import Client
from django.urls import reverse

from audit.actions import AuditAction
from audit.models import AuditEvent
from invoices.events import InvoiceEvent, invoice_event_record
from paymenter import rls
from paymenter.models import OutboxMessage, OutboxStatus
from tests.callbacks.conftest import TEST_PRINCIPAL
from tests.factories import make_customer, make_invoice

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:paymenter_outboxmessage_changelist")


def _staff_client(role: str) -> tuple[Client, User]:
    user = User.objects.create_user(username=f"outbox-{role}-{uuid.uuid4().hex[:8]}", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client, user


def _dead_message() -> OutboxMessage:
    with rls.acting_as(TEST_PRINCIPAL):
        invoice = make_invoice(make_customer())
        with transaction.atomic():
            [message] = invoice_event_record(event=InvoiceEvent.VOIDED, invoice=invoice)
            event_id = message.event_id
        OutboxMessage.objects.filter(event_id=event_id).update(status=OutboxStatus.DEAD, attempts=9)
        return OutboxMessage.objects.get(event_id=event_id)


def _redelivery_audits(message: OutboxMessage) -> list[AuditEvent]:
    with rls.acting_as(TEST_PRINCIPAL):
        return list(
            AuditEvent.objects.filter(
                action=AuditAction.CALLBACK_REDELIVERY_REQUESTED.value, object_id=str(message.event_id)
            )
        )


@pytest.mark.parametrize("role", ["billing", "admin"])
def test_billing_and_admin_staff_redeliver_a_dead_message(role: str) -> None:
    message = _dead_message()
    client, user = _staff_client(role)

    listing = client.get(CHANGELIST, {"status__exact": "dead"})
    response = client.post(CHANGELIST, {"action": "redeliver_selected", "_selected_action": [message.pk]})

    assert listing.status_code == 200
    assert str(message.event_id) in listing.content.decode()
    assert response.status_code == 302
    with rls.acting_as(TEST_PRINCIPAL):
        row = OutboxMessage.objects.get(pk=message.pk)
    assert (row.status, row.attempts) == (OutboxStatus.PENDING, 9)
    [audit] = _redelivery_audits(message)
    assert (audit.actor_type, audit.actor_id) == ("staff", str(user.pk))
    assert audit.payload["before"] == {"status": "dead"}


def test_support_staff_cannot_see_the_outbox() -> None:
    message = _dead_message()
    client, _ = _staff_client("support")

    listing = client.get(CHANGELIST)
    response = client.post(CHANGELIST, {"action": "redeliver_selected", "_selected_action": [message.pk]})

    assert listing.status_code == 403
    assert response.status_code == 403
    with rls.acting_as(TEST_PRINCIPAL):
        assert OutboxMessage.objects.get(pk=message.pk).status == OutboxStatus.DEAD
    assert _redelivery_audits(message) == []


def test_outbox_rows_are_read_only_in_the_admin() -> None:
    message = _dead_message()
    client, _ = _staff_client("admin")
    change_url = reverse("admin:paymenter_outboxmessage_change", args=[message.pk])

    page = client.get(change_url)
    edit = client.post(change_url, {"status": "pending"})

    assert page.status_code == 200
    assert edit.status_code == 403
    assert client.get(reverse("admin:paymenter_outboxmessage_add")).status_code == 403
    assert client.get(reverse("admin:paymenter_outboxmessage_delete", args=[message.pk])).status_code == 403
    with rls.acting_as(TEST_PRINCIPAL):
        assert OutboxMessage.objects.get(pk=message.pk).status == OutboxStatus.DEAD


@pytest.mark.parametrize("term", ["not-a-uuid", "invoice:"])
def test_outbox_search_by_event_id_or_ordering_key(term: str) -> None:
    message = _dead_message()
    client, _ = _staff_client("billing")

    by_event = client.get(CHANGELIST, {"q": str(message.event_id)})
    other = client.get(CHANGELIST, {"q": term})

    assert by_event.status_code == 200
    assert str(message.event_id) in by_event.content.decode()
    assert other.status_code == 200
    assert str(message.event_id) not in other.content.decode()
