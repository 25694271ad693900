"""The chain links, the canonical form, and what an event records."""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo

import pytest
from django.db import transaction

from audit import chain
from audit.actions import AuditAction
from audit.models import GENESIS_HASH, AuditChainHead, AuditEvent
from audit.services import audit_record, chain_fields_of
from audit.verification import verify_chain
from paymenter import keyring, request_context, rls
from paymenter.principals import CustomerPrincipal, StaffPrincipal, SystemPrincipal

pytestmark = pytest.mark.django_db

FIXED_FIELDS = chain.ChainFields(
    sequence=7,
    occurred_at=dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
    actor_type="staff",
    actor_id="42",
    action="invoice.issued",
    object_type="invoice",
    object_id="INV-1",
    customer_id=uuid.UUID("12345678-1234-5678-1234-567812345678"),
    payload={"b": 1, "a": ["x", None, True]},
    request_id="req-abcdef12",
    ip="2001:db8:0:0:0:0:0:1",
    prev_hash=GENESIS_HASH,
    key_id="k1",
)


def test_canonical_form_is_sorted_compact_json_with_utc_microseconds() -> None:
    assert chain.canonical_bytes(FIXED_FIELDS) == (
        b'{"action":"invoice.issued","actor_id":"42","actor_type":"staff",'
        b'"customer_id":"12345678-1234-5678-1234-567812345678","ip":"2001:db8::1",'
        b'"key_id":"k1","object_id":"INV-1","object_type":"invoice",'
        b'"occurred_at":"2026-01-02T03:04:05.000006Z","payload":{"a":["x",null,true],"b":1},'
        b'"prev_hash":"' + GENESIS_HASH.encode() + b'","request_id":"req-abcdef12","sequence":7,"v":1}'
    )


def test_canonical_form_does_not_depend_on_the_time_zone_of_the_timestamp() -> None:
    hobart = FIXED_FIELDS.occurred_at.astimezone(zoneinfo.ZoneInfo("Australia/Hobart"))
    shifted = chain.ChainFields(**{**FIXED_FIELDS.__dict__, "occurred_at": hobart})

    assert hobart.utcoffset() != dt.timedelta(0)
    assert chain.canonical_bytes(shifted) == chain.canonical_bytes(FIXED_FIELDS)


def test_canonical_form_refuses_naive_timestamps() -> None:
    naive = chain.ChainFields(**{**FIXED_FIELDS.__dict__, "occurred_at": dt.datetime(2026, 1, 2)})  # noqa: DTZ001

    with pytest.raises(ValueError, match="timezone-aware"):
        chain.canonical_bytes(naive)


def test_each_event_links_to_the_previous_hmac_and_moves_the_head(system_principal: SystemPrincipal) -> None:
    head_before = AuditChainHead.objects.get()

    with transaction.atomic():
        first = audit_record(action=AuditAction.CUSTOMER_CREATED, object_type="customer", object_id="c1")
        second = audit_record(action=AuditAction.CUSTOMER_UPDATED, object_type="customer", object_id="c1")
        third = audit_record(action=AuditAction.INVOICE_CREATED, object_type="invoice", object_id="i1")

    head = AuditChainHead.objects.get()
    assert [first.sequence, second.sequence, third.sequence] == [
        head_before.last_sequence + 1,
        head_before.last_sequence + 2,
        head_before.last_sequence + 3,
    ]
    assert first.prev_hash == head_before.last_hash
    assert second.prev_hash == first.hmac
    assert third.prev_hash == second.hmac
    assert (head.last_sequence, head.last_hash) == (third.sequence, third.hmac)
    assert first.occurred_at <= second.occurred_at <= third.occurred_at
    result = verify_chain()
    assert (result.ok, result.checked, result.first_bad_sequence, result.reason) == (
        True,
        third.sequence,
        None,
        None,
    )


def test_stored_row_recomputes_to_its_hmac_with_the_named_key(system_principal: SystemPrincipal) -> None:
    ring = keyring.from_settings("AUDIT_HMAC_KEYS")
    context = request_context.RequestContext(request_id="req-0123456789", client_ip="2001:db8:0:0::1")
    customer_id = uuid.uuid4()

    with request_context.bound(context), transaction.atomic():
        created = audit_record(
            action=AuditAction.INVOICE_ISSUED,
            object_type="invoice",
            object_id="INV-000042",
            customer_id=customer_id,
            payload={"before": {"status": "draft"}, "after": {"status": "issued"}, "total_minor": 12345},
        )

    stored = AuditEvent.objects.get(sequence=created.sequence)
    assert (stored.actor_type, stored.actor_id, stored.action) == ("system", "test", "invoice.issued")
    assert (stored.object_type, stored.object_id, stored.customer_id) == ("invoice", "INV-000042", customer_id)
    assert (stored.request_id, stored.ip, stored.key_id) == ("req-0123456789", "2001:db8::1", ring.primary_id)
    assert stored.payload == {"before": {"status": "draft"}, "after": {"status": "issued"}, "total_minor": 12345}
    assert stored.occurred_at.tzinfo is not None
    assert stored.hmac == chain.compute_hmac(chain_fields_of(stored), key=ring.get(stored.key_id))
    assert stored.hmac == created.hmac


def test_payload_is_redacted_before_it_is_stored_and_signed(system_principal: SystemPrincipal) -> None:
    with transaction.atomic():
        created = audit_record(
            action=AuditAction.CUSTOMER_UPDATED,
            payload={"note": "paid with card 4242 4242 4242 4242 today", "password": "hunter2", "amount_minor": 500},
        )

    stored = AuditEvent.objects.get(sequence=created.sequence)
    assert stored.payload == {
        "note": "paid with card [REDACTED:PAN] today",
        "password": "[REDACTED]",
        "amount_minor": 500,
    }
    assert "4242" not in str(AuditEvent.objects.filter(sequence=created.sequence).values_list("payload", flat=True)[0])
    assert verify_chain().ok is True


def test_payload_values_jsonb_would_alter_are_stored_as_strings(system_principal: SystemPrincipal) -> None:
    with transaction.atomic():
        created = audit_record(
            action=AuditAction.INVOICE_CREATED,
            payload={"rate": 1e20, "when": dt.date(2026, 1, 2), "ids": ("a", "b")},
        )

    stored = AuditEvent.objects.get(sequence=created.sequence)
    assert stored.payload == {"rate": "1e+20", "when": "2026-01-02", "ids": ["a", "b"]}
    assert verify_chain().ok is True


def test_anonymous_session_may_append_but_not_read_the_trail() -> None:
    assert rls.current_principal() is None

    with transaction.atomic():
        created = audit_record(action=AuditAction.CUSTOMER_ACCESS_GRANTED, object_type="customer", object_id="x")
        visible_to_anonymous = AuditEvent.objects.filter(sequence=created.sequence).count()

    assert (created.actor_type, created.actor_id) == ("anonymous", "")
    assert visible_to_anonymous == 0
    with rls.acting_as(SystemPrincipal(label="test")):
        assert AuditEvent.objects.get(sequence=created.sequence).actor_type == "anonymous"


def test_customer_scope_cannot_select_audit_rows_of_its_own_customer() -> None:
    customer_id = uuid.uuid4()
    customer = CustomerPrincipal(user_id=5, customer_ids=frozenset({customer_id}))

    with rls.acting_as(customer), transaction.atomic():
        created = audit_record(action=AuditAction.CUSTOMER_UPDATED, customer_id=customer_id, object_id="me")
        seen_by_customer = AuditEvent.objects.filter(customer_id=customer_id).count()

    assert (created.actor_type, created.actor_id) == ("customer_user", "5")
    assert seen_by_customer == 0
    with rls.acting_as(StaffPrincipal(user_id=1)):
        assert AuditEvent.objects.filter(customer_id=customer_id).count() == 1
    with rls.acting_as(SystemPrincipal(label="test")):
        assert AuditEvent.objects.filter(customer_id=customer_id).count() == 1


def test_explicit_principal_overrides_the_acting_one(system_principal: SystemPrincipal) -> None:
    with transaction.atomic():
        created = audit_record(action=AuditAction.INVOICE_VOIDED, principal=StaffPrincipal(user_id=9, username="ops"))

    assert (created.actor_type, created.actor_id) == ("staff", "9")
