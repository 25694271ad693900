"""An audit event commits or rolls back with the change it records, and only inside one."""

from __future__ import annotations

import pytest
from django.db import transaction

from audit.actions import AuditAction
from audit.errors import AuditErrorCode, AuditOutsideTransactionError
from audit.models import AuditChainHead, AuditEvent
from audit.services import audit_record
from paymenter import rls
from paymenter.principals import SystemPrincipal
from tests.audit.helpers import WRITER

pytestmark = pytest.mark.committed


class ChangeFailedError(Exception):
    pass


def _record_then_fail() -> None:
    """A service whose change fails after it wrote its audit event."""
    with transaction.atomic():
        audit_record(action=AuditAction.INVOICE_VOIDED, object_type="invoice", object_id="rolled-back")
        raise ChangeFailedError


def _state() -> tuple[int, int]:
    with rls.acting_as(WRITER):
        return AuditEvent.objects.count(), AuditChainHead.objects.get().last_sequence


def test_event_is_rolled_back_with_its_failing_transaction(committed_db: None) -> None:
    count_before, head_before = _state()

    with pytest.raises(ChangeFailedError), rls.acting_as(WRITER):
        _record_then_fail()

    assert _state() == (count_before, head_before)
    with rls.acting_as(WRITER):
        assert AuditEvent.objects.filter(object_id="rolled-back").exists() is False


def test_event_commits_with_its_transaction(committed_db: None) -> None:
    count_before, head_before = _state()

    with rls.acting_as(WRITER), transaction.atomic():
        created = audit_record(action=AuditAction.INVOICE_ISSUED, object_type="invoice", object_id="committed")

    assert _state() == (count_before + 1, head_before + 1)
    assert created.sequence == head_before + 1


def test_writing_outside_a_transaction_is_refused_and_writes_nothing(committed_db: None) -> None:
    count_before, head_before = _state()

    with (
        rls.acting_as(SystemPrincipal(label="test")),
        pytest.raises(AuditOutsideTransactionError) as refused,
    ):
        audit_record(action=AuditAction.CUSTOMER_CREATED, object_type="customer", object_id="outside")

    assert refused.value.code == AuditErrorCode.OUTSIDE_TRANSACTION
    assert refused.value.status_code == 500
    assert _state() == (count_before, head_before)
