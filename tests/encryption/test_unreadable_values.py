"""A stored value that does not decrypt (moved between rows, tampered, key gone) is a clear
409 and an audit event, never a 500; no key material reaches an error page or a log."""

from __future__ import annotations

import base64
import logging
import sys
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client, RequestFactory
from django.urls import reverse
from django.views.debug import technical_500_response

from audit.models import AuditEvent
from billing.models import Customer
from paymenter import encryption, rls
from paymenter.metrics import Metric, metrics_snapshot
from paymenter.principals import SystemPrincipal
from tests.factories import make_customer
from tests.o2s.api_helpers import make_api_client

pytestmark = pytest.mark.django_db

READER = SystemPrincipal(label="test:unreadable")


def _moved_email() -> Customer:
    """A customer whose email column holds another customer's ciphertext (as an attacker
    with database access might do: valid ciphertext, wrong row)."""
    with rls.acting_as(READER):
        victim, donor = make_customer(), make_customer()
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE billing_customer SET email = (SELECT email FROM billing_customer WHERE id = %s) WHERE id = %s",
                [donor.id, victim.id],
            )
    return victim


def _unreadable_events(customer: Customer) -> list[AuditEvent]:
    with rls.acting_as(READER):
        return list(
            AuditEvent.objects.filter(
                action="encryption.value_unreadable", object_type="billing_customer.email", object_id=str(customer.id)
            )
        )


def test_the_api_answers_409_audits_and_alerts(caplog: pytest.LogCaptureFixture) -> None:
    victim = _moved_email()
    client = make_api_client()
    before = metrics_snapshot()[Metric.ENCRYPTED_VALUES_UNREADABLE]

    response = client.get(f"/api/v1/customers/{victim.id}/")

    assert response.status_code == 409
    assert response.json() == {
        "error": {
            "code": "encrypted_value_unreadable",
            "message": "A stored value of this record cannot be read; the record is held for investigation.",
            "fields": {},
        }
    }
    [event] = _unreadable_events(victim)
    assert event.payload["place"] == f"billing_customer.email:{victim.id}"
    assert event.payload["seen_by"].startswith("api_key:")
    alerts = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert [getattr(r, "alert", "") for r in alerts] == ["encrypted_value_unreadable"]
    assert metrics_snapshot()[Metric.ENCRYPTED_VALUES_UNREADABLE] == before + 1


def test_the_admin_answers_409_with_a_page_not_a_500() -> None:
    victim = _moved_email()
    user = User.objects.create_user(username="staff-admin", is_staff=True)
    user.groups.add(Group.objects.get(name="admin"))
    client = Client()
    client.force_login(user)

    response = client.get(reverse("admin:billing_customer_change", args=[victim.pk]))

    assert response.status_code == 409
    assert b"cannot be read" in response.content
    assert len(_unreadable_events(victim)) == 1


def _key_material_strings() -> list[bytes]:
    _, _, material = settings.FIELD_ENCRYPTION_KEYS.split(",")[0].partition(":")
    raw = base64.b64decode(material)
    return [material.encode(), raw, repr(raw).encode()[2:-1]]


def test_the_debug_page_of_a_decryption_failure_shows_no_key_material(settings: Any) -> None:
    settings.DEBUG = True
    token = encryption.encrypt("alice@example.com", context="billing_customer.email:1")
    request = RequestFactory().get("/")
    try:
        encryption.decrypt(token, context="billing_customer.email:2")
    except encryption.DecryptionError:
        page = technical_500_response(request, *sys.exc_info())

    content = page.content
    assert b"value does not decrypt for billing_customer.email:2" in content  # the page is the real one
    for secret in _key_material_strings():
        assert secret not in content
    assert repr(encryption.field_keyring()) == "Keyring('FIELD_ENCRYPTION_KEYS', ids=['dev1'])"
