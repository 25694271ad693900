"""Stored idempotent responses (they hold customer data) are visible only to the API key
that made them, and to the system (the purge); nobody else, and nothing without a scope."""

from __future__ import annotations

import uuid

import pytest
from django.db import ProgrammingError, connection, transaction

from billing.models import ApiKey
from o2s.models import IdempotencyRecord
from o2s.services import api_key_create
from paymenter import rls
from paymenter.principals import ApiKeyPrincipal, CustomerPrincipal, StaffPrincipal, SystemPrincipal

pytestmark = pytest.mark.django_db

SYSTEM = SystemPrincipal(label="test:idempotency-rls")


def _record(api_key: ApiKey, key: str) -> IdempotencyRecord:
    record = IdempotencyRecord(api_key=api_key, key=key, request_fingerprint="f" * 64, response_status=201)
    record.response_body = {"id": key}  # an encrypted JSON field: any JSON document
    record.save(force_insert=True)
    return record


def _key_with_record(name: str) -> ApiKey:
    with rls.acting_as(SYSTEM):
        api_key, _ = api_key_create(principal=SYSTEM, name=name, allowed_networks=["127.0.0.1/32"])
        _record(api_key, f"{name}-1")
    return api_key


def _visible_keys() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT key FROM paymenter_idempotencyrecord")
        return {row[0] for row in cursor.fetchall()}


def test_an_api_key_sees_only_its_own_records_with_raw_sql() -> None:
    first, second = _key_with_record("first"), _key_with_record("second")

    with rls.acting_as(ApiKeyPrincipal(api_key_id=first.pk)), transaction.atomic():
        assert _visible_keys() == {"first-1"}
    with rls.acting_as(ApiKeyPrincipal(api_key_id=second.pk)), transaction.atomic():
        assert _visible_keys() == {"second-1"}
    with rls.acting_as(SYSTEM), transaction.atomic():
        assert {"first-1", "second-1"} <= _visible_keys()


@pytest.mark.parametrize(
    "principal",
    [StaffPrincipal(user_id=1, username="staff"), CustomerPrincipal(user_id=2, customer_ids=frozenset()), None],
)
def test_staff_customers_and_no_scope_see_no_records(principal: object) -> None:
    _key_with_record("hidden")

    if principal is None:
        assert _visible_keys() == set()
    else:
        with rls.acting_as(principal), transaction.atomic():  # type: ignore[arg-type]
            assert _visible_keys() == set()


def test_an_api_key_cannot_write_a_record_under_another_key() -> None:
    mine, theirs = _key_with_record("mine"), _key_with_record("theirs")

    with rls.acting_as(ApiKeyPrincipal(api_key_id=mine.pk)), pytest.raises(ProgrammingError), transaction.atomic():
        _record(theirs, str(uuid.uuid4()))

    with rls.acting_as(SYSTEM):
        assert IdempotencyRecord.objects.filter(api_key=theirs).count() == 1
