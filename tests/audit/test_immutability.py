"""The database refuses to change or remove audit rows: privileges, triggers, model methods."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, ProgrammingError, connection, transaction

from audit.actions import AuditAction
from audit.models import AuditChainHead, AuditEvent, AuditTrailImmutableError
from audit.services import audit_record
from paymenter import rls
from paymenter.principals import SystemPrincipal
from tests.audit.helpers import WRITER, owner_forgery, record_committed, scalar

INSUFFICIENT_PRIVILEGE = "42501"
RAISED_BY_TRIGGER = "P0001"  # plpgsql RAISE EXCEPTION
PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


def _privileges(table: str) -> set[str]:
    with connection.cursor() as cursor:
        return {
            privilege
            for privilege in PRIVILEGES
            if scalar(cursor, "SELECT has_table_privilege(current_user, %s, %s)", [table, privilege])
        }


def _sqlstate(error: DatabaseError) -> str | None:
    cause = error.__cause__
    return getattr(cause, "sqlstate", None)


def _refused(sql: str, params: list[int] | None = None) -> DatabaseError:
    """Run ``sql`` in a savepoint and return the database error it must raise."""
    with pytest.raises(DatabaseError) as refused, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params or [])
    return refused.value


@pytest.mark.django_db
def test_app_role_holds_exactly_select_and_insert_on_events() -> None:
    with connection.cursor() as cursor:
        assert scalar(cursor, "SELECT current_user") == "paymenter_app"

    assert _privileges("audit_auditevent") == {"SELECT", "INSERT"}


@pytest.mark.django_db
def test_app_role_holds_exactly_select_and_update_on_the_chain_head() -> None:
    assert _privileges("audit_auditchainhead") == {"SELECT", "UPDATE"}


@pytest.mark.django_db
def test_app_role_update_delete_truncate_are_refused(system_principal: SystemPrincipal) -> None:
    with transaction.atomic():
        event = audit_record(action=AuditAction.INVOICE_ISSUED, object_type="invoice", object_id="keep")

    update = _refused("UPDATE audit_auditevent SET object_id = 'changed' WHERE sequence = %s", [event.sequence])
    delete = _refused("DELETE FROM audit_auditevent WHERE sequence = %s", [event.sequence])
    truncate = _refused("TRUNCATE audit_auditevent")

    for error in (update, delete, truncate):
        assert isinstance(error, ProgrammingError)
        assert _sqlstate(error) == INSUFFICIENT_PRIVILEGE
        assert "permission denied for table audit_auditevent" in str(error)
    assert AuditEvent.objects.get(sequence=event.sequence).object_id == "keep"


@pytest.mark.django_db
def test_orm_refuses_to_update_or_delete_an_event(system_principal: SystemPrincipal) -> None:
    with transaction.atomic():
        event = audit_record(action=AuditAction.INVOICE_ISSUED, object_type="invoice", object_id="keep")

    event.object_id = "changed"
    with pytest.raises(AuditTrailImmutableError, match="cannot be updated"):
        event.save()
    with pytest.raises(AuditTrailImmutableError, match="cannot be deleted"):
        event.delete()
    with pytest.raises(ProgrammingError, match="permission denied"), transaction.atomic():
        AuditEvent.objects.filter(sequence=event.sequence).update(object_id="changed")
    with pytest.raises(ProgrammingError, match="permission denied"), transaction.atomic():
        AuditEvent.objects.filter(sequence=event.sequence).delete()

    assert AuditEvent.objects.get(sequence=event.sequence).object_id == "keep"


@pytest.mark.django_db
def test_app_role_cannot_rewind_or_remove_the_chain_head(system_principal: SystemPrincipal) -> None:
    head = AuditChainHead.objects.get()

    rewind = _refused("UPDATE audit_auditchainhead SET last_sequence = 0, last_hash = repeat('0', 64)")
    delete = _refused("DELETE FROM audit_auditchainhead")

    assert isinstance(rewind, ProgrammingError)
    assert _sqlstate(rewind) == RAISED_BY_TRIGGER
    assert str(rewind).startswith("audit chain head may only advance")
    assert isinstance(delete, ProgrammingError)
    assert _sqlstate(delete) == INSUFFICIENT_PRIVILEGE
    assert "permission denied for table audit_auditchainhead" in str(delete)
    assert AuditChainHead.objects.get().last_sequence == head.last_sequence


@pytest.mark.committed
def test_triggers_refuse_the_owner_update_delete_truncate(committed_db: None) -> None:
    """Even the table owner, with privileges and RLS out of the way, meets the triggers."""
    (event,) = record_committed(1)

    refusals: list[tuple[str | None, str]] = []
    with owner_forgery() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")
        cursor.execute("ALTER TABLE audit_auditchainhead ENABLE TRIGGER USER")
        for sql in (
            f"UPDATE audit_auditevent SET object_id = 'x' WHERE sequence = {event.sequence}",
            f"DELETE FROM audit_auditevent WHERE sequence = {event.sequence}",
            "TRUNCATE audit_auditevent",
            "DELETE FROM audit_auditchainhead",
            "TRUNCATE audit_auditchainhead",
        ):
            with pytest.raises(ProgrammingError) as refused, transaction.atomic(using="owner"):
                cursor.execute(sql)
            refusals.append((_sqlstate(refused.value), str(refused.value).splitlines()[0]))

    assert refusals == [
        (RAISED_BY_TRIGGER, "audit_auditevent is append-only: UPDATE refused"),
        (RAISED_BY_TRIGGER, "audit_auditevent is append-only: DELETE refused"),
        (RAISED_BY_TRIGGER, "audit_auditevent is append-only: TRUNCATE refused"),
        (RAISED_BY_TRIGGER, "audit_auditchainhead is append-only: DELETE refused"),
        (RAISED_BY_TRIGGER, "audit_auditchainhead is append-only: TRUNCATE refused"),
    ]
    with rls.acting_as(WRITER):
        assert AuditEvent.objects.get(sequence=event.sequence).object_id == event.object_id
