"""``manage.py rotate_encryption_key`` re-encrypts every value under the new primary key,
in audited batches, and finishes an interrupted run when started again."""

from __future__ import annotations

import base64
import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from pytest_django.fixtures import Settings

from audit.actions import AuditAction
from audit.models import AuditEvent
from billing.errors import CustomerNotFoundError
from billing.models import Customer
from billing.selectors import customer_get_by_email
from invoices.models import Invoice, InvoiceStatus
from paymenter.principals import SystemPrincipal
from tests.factories import make_customer, make_invoice

pytestmark = pytest.mark.django_db

NEW_KEY = base64.b64encode(bytes(range(32))).decode()
CUSTOMER_COLUMNS = ("name", "email", "phone", "postal_address", "tax_id")
ACTOR = "command:rotate_encryption_key"


def _old_spec(settings: Settings) -> str:
    spec: str = settings.FIELD_ENCRYPTION_KEYS
    assert spec.startswith("dev1:")
    return spec


def _snapshot() -> dict[str, tuple[Any, ...]]:
    """Every stored encrypted value, keyed by table and row."""
    rows: dict[str, tuple[Any, ...]] = {}
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, {', '.join(CUSTOMER_COLUMNS)} FROM billing_customer")
        rows.update({f"customer:{row[0]}": tuple(row[1:]) for row in cursor.fetchall()})
        cursor.execute("SELECT id, buyer_details FROM invoices_invoice")
        rows.update({f"invoice:{row[0]}": (row[1],) for row in cursor.fetchall()})
    return rows


def _rows_by_key(key_id: str) -> int:
    """Rows whose every non-null encrypted value is under ``key_id``."""
    prefix = f"v1:{key_id}:"
    return sum(
        1
        for values in _snapshot().values()
        if any(v is not None for v in values) and all(v is None or v.startswith(prefix) for v in values)
    )


def _stale_rows() -> int:
    return sum(1 for values in _snapshot().values() if any(v is not None for v in values))


def _plaintexts(customers: list[Customer], invoice: Invoice) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for customer in customers:
        fresh = Customer.objects.get(pk=customer.pk)
        seen[str(customer.pk)] = [getattr(fresh, column) for column in CUSTOMER_COLUMNS]
    seen[str(invoice.pk)] = Invoice.objects.get(pk=invoice.pk).buyer_details
    return seen


def _rotation_events() -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(action=AuditAction.ENCRYPTION_KEY_ROTATED, actor_id=ACTOR).order_by("sequence")
    )


def _rotate(**options: Any) -> str:
    out = StringIO()
    call_command("rotate_encryption_key", stdout=out, **options)
    return out.getvalue()


def test_rotation_reencrypts_everything_under_the_new_primary(
    system_principal: SystemPrincipal, settings: Settings
) -> None:
    customers = [make_customer(phone=None) if n == 1 else make_customer() for n in range(3)]
    invoice = make_invoice(customers[0])
    before = _plaintexts(customers, invoice)
    updated_at = {c.pk: Customer.objects.get(pk=c.pk).updated_at for c in customers}
    stale = _stale_rows()
    assert _rows_by_key("dev1") == stale
    old = _old_spec(settings)
    settings.FIELD_ENCRYPTION_KEYS = f"k2:{NEW_KEY},{old}"

    output = _rotate(batch_size=2)

    assert f"re-encrypted {stale} rows under key k2" in output
    assert _rows_by_key("k2") == stale
    assert _rows_by_key("dev1") == 0
    assert _plaintexts(customers, invoice) == before
    assert {c.pk: Customer.objects.get(pk=c.pk).updated_at for c in customers} == updated_at
    assert Customer.objects.get(pk=customers[1].pk).phone is None
    issued = Invoice.objects.get(pk=invoice.pk)
    assert issued.status == InvoiceStatus.OPEN
    assert issued.checksum == invoice.checksum

    settings.FIELD_ENCRYPTION_KEYS = f"k2:{NEW_KEY}"
    assert _plaintexts(customers, invoice) == before


def test_rotation_is_resumable_after_a_limited_run(system_principal: SystemPrincipal, settings: Settings) -> None:
    for _ in range(5):
        make_customer()
    stale = _stale_rows()
    settings.FIELD_ENCRYPTION_KEYS = f"k2:{NEW_KEY},{_old_spec(settings)}"

    first = _rotate(batch_size=2, limit=3)

    assert "re-encrypted 3 rows under key k2; stopped at --limit" in first
    assert _rows_by_key("k2") == 3
    assert _rows_by_key("dev1") == stale - 3

    second = _rotate(batch_size=2)

    assert f"re-encrypted {stale - 3} rows under key k2" in second
    assert _rows_by_key("k2") == stale
    assert _rows_by_key("dev1") == 0

    third = _rotate(batch_size=2)

    assert "re-encrypted 0 rows under key k2" in third
    assert _rows_by_key("k2") == stale


def test_rotation_is_audited_per_batch_without_plaintext(system_principal: SystemPrincipal, settings: Settings) -> None:
    customers = [make_customer() for _ in range(2)]
    events_before = AuditEvent.objects.count()
    settings.FIELD_ENCRYPTION_KEYS = f"k2:{NEW_KEY},{_old_spec(settings)}"

    _rotate(batch_size=2, limit=2)

    events = _rotation_events()
    assert AuditEvent.objects.count() == events_before + 1
    assert len(events) == 1
    event = events[0]
    assert event.action == "encryption.key_rotated"
    assert event.actor_type == "system"
    assert (event.object_type, event.object_id) == ("model", "billing.Customer")
    rotated_values = sum(
        sum(1 for v in values if v is not None)
        for values in _snapshot().values()
        if any(v is not None and v.startswith("v1:k2:") for v in values)
    )
    assert event.payload == {
        "model": "billing.Customer",
        "fields": list(CUSTOMER_COLUMNS),
        "rows_reencrypted": 2,
        "values_reencrypted": rotated_values,
        "from_key_ids": ["dev1"],
        "to_key_id": "k2",
    }
    serialized = json.dumps(event.payload)
    for customer in customers:
        fresh = Customer.objects.get(pk=customer.pk)
        for text in (fresh.name, fresh.email, fresh.tax_id, fresh.phone):
            assert text not in serialized
        assert "Salamanca" not in serialized


def test_dry_run_changes_nothing(system_principal: SystemPrincipal, settings: Settings) -> None:
    make_invoice(make_customer())
    stale = _stale_rows()
    snapshot = _snapshot()
    events_before = AuditEvent.objects.count()
    settings.FIELD_ENCRYPTION_KEYS = f"k2:{NEW_KEY},{_old_spec(settings)}"

    output = _rotate(dry_run=True)

    assert f"would re-encrypt {stale} rows under key k2" in output
    assert _snapshot() == snapshot
    assert AuditEvent.objects.count() == events_before


def test_rotation_without_the_old_key_is_refused_and_writes_nothing(
    system_principal: SystemPrincipal, settings: Settings
) -> None:
    make_customer()
    snapshot = _snapshot()
    events_before = AuditEvent.objects.count()
    settings.FIELD_ENCRYPTION_KEYS = f"k2:{NEW_KEY}"

    with pytest.raises(CommandError, match="unknown encryption key id 'dev1'"):
        _rotate(batch_size=2)

    assert _snapshot() == snapshot
    assert AuditEvent.objects.count() == events_before


def test_blind_index_recompute_after_blind_index_key_change(
    system_principal: SystemPrincipal, settings: Settings
) -> None:
    customer = make_customer(email="Ops@Echidna.example")
    old_index = customer.email_index
    settings.BLIND_INDEX_KEY = NEW_KEY
    with pytest.raises(CustomerNotFoundError):
        customer_get_by_email(principal=system_principal, email="ops@echidna.example")
    total = Customer.objects.count()

    output = _rotate(blind_index=True, batch_size=2)

    assert output == f"email index: recomputed {total} of {total} customers\n"
    fresh = customer_get_by_email(principal=system_principal, email="ops@echidna.example")
    assert fresh.id == customer.id
    assert fresh.email_index != old_index
    assert _rotate(blind_index=True) == f"email index: recomputed 0 of {total} customers\n"
