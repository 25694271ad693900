"""Whatever gets past the triggers (an owner or superuser) is detected by verification.

Each test commits three fresh events, forges the chain in an owner transaction that is
rolled back afterwards, and asserts the exact first bad row the command names.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import CommandError, call_command

from audit import chain
from audit.models import AuditEvent
from audit.verification import BreakReason, verify_chain
from paymenter import rls
from tests.audit.helpers import WRITER, owner_forgery, record_committed

pytestmark = pytest.mark.committed

ATTACKER_KEY = b"an attacker who lacks the real key"


def _verify_as_owner_expecting_break() -> str:
    with pytest.raises(CommandError) as broken:
        call_command("verify_audit_chain", database="owner")
    assert broken.value.returncode == 1
    return str(broken.value)


def _chain_is_intact() -> None:
    with rls.acting_as(WRITER):
        result = verify_chain()
    assert (result.ok, result.first_bad_sequence, result.reason) == (True, None, None)


def test_edited_row_is_named_as_the_first_bad_row(committed_db: None) -> None:
    _, second, _ = record_committed(3)

    with owner_forgery() as cursor:
        cursor.execute(
            'UPDATE audit_auditevent SET payload = \'{"index": 1, "amount_minor": 1}\' WHERE sequence = %s',
            [second.sequence],
        )
        message = _verify_as_owner_expecting_break()

    assert message.startswith(f"audit chain BROKEN at sequence {second.sequence}: hmac_mismatch")
    _chain_is_intact()


def test_deleted_row_is_named_as_missing(committed_db: None) -> None:
    _, second, third = record_committed(3)

    with owner_forgery() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE sequence = %s", [second.sequence])
        message = _verify_as_owner_expecting_break()

    assert message.startswith(
        f"audit chain BROKEN at sequence {second.sequence}: missing_row"
        f" - row #{second.sequence} is missing (next row is #{third.sequence})"
    )
    _chain_is_intact()


def test_truncated_tail_is_detected_against_the_chain_head(committed_db: None) -> None:
    _, _, third = record_committed(3)

    with owner_forgery() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE sequence = %s", [third.sequence])
        message = _verify_as_owner_expecting_break()

    assert message.startswith(f"audit chain BROKEN at sequence {third.sequence}: tail_truncated")
    _chain_is_intact()


def test_reordered_rows_are_detected(committed_db: None) -> None:
    _, second, third = record_committed(3)
    parking = third.sequence + 1_000_000

    with owner_forgery() as cursor:
        cursor.execute("UPDATE audit_auditevent SET sequence = %s WHERE sequence = %s", [parking, second.sequence])
        cursor.execute(
            "UPDATE audit_auditevent SET sequence = %s WHERE sequence = %s", [second.sequence, third.sequence]
        )
        cursor.execute("UPDATE audit_auditevent SET sequence = %s WHERE sequence = %s", [third.sequence, parking])
        message = _verify_as_owner_expecting_break()

    assert message.startswith(f"audit chain BROKEN at sequence {second.sequence}: hmac_mismatch")
    _chain_is_intact()


def test_row_inserted_mid_chain_without_the_key_is_detected(committed_db: None) -> None:
    first, second, _ = record_committed(3)
    forged = chain.ChainFields(
        sequence=second.sequence,
        occurred_at=second.occurred_at - dt.timedelta(microseconds=1),
        actor_type="staff",
        actor_id="1",
        action="invoice.voided",
        object_type="invoice",
        object_id="forged",
        customer_id=None,
        payload={},
        request_id="",
        ip=None,
        prev_hash=first.hmac,
        key_id=first.key_id,
    )

    with owner_forgery() as cursor:
        cursor.execute(
            "UPDATE audit_auditevent SET sequence = sequence + 1000000 WHERE sequence >= %s", [second.sequence]
        )
        cursor.execute("UPDATE audit_auditevent SET sequence = sequence - 999999 WHERE sequence >= %s", [1_000_000])
        cursor.execute("UPDATE audit_auditchainhead SET last_sequence = last_sequence + 1")
        cursor.execute(
            "INSERT INTO audit_auditevent (sequence, occurred_at, actor_type, actor_id, action, object_type,"
            " object_id, customer_id, payload, request_id, ip, prev_hash, hmac, key_id)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, NULL, '{}', '', NULL, %s, %s, %s)",
            [
                forged.sequence,
                forged.occurred_at,
                forged.actor_type,
                forged.actor_id,
                forged.action,
                forged.object_type,
                forged.object_id,
                forged.prev_hash,
                chain.compute_hmac(forged, key=ATTACKER_KEY),
                forged.key_id,
            ],
        )
        message = _verify_as_owner_expecting_break()

    assert message.startswith(f"audit chain BROKEN at sequence {second.sequence}: hmac_mismatch")
    _chain_is_intact()


def test_row_appended_beyond_the_head_is_detected(committed_db: None) -> None:
    _, _, third = record_committed(3)

    with owner_forgery() as cursor:
        cursor.execute(
            "INSERT INTO audit_auditevent (sequence, occurred_at, actor_type, actor_id, action, object_type,"
            " object_id, customer_id, payload, request_id, ip, prev_hash, hmac, key_id)"
            " SELECT sequence + 1, occurred_at, actor_type, actor_id, action, object_type, object_id,"
            " customer_id, payload, request_id, ip, hmac, hmac, key_id FROM audit_auditevent WHERE sequence = %s",
            [third.sequence],
        )
        message = _verify_as_owner_expecting_break()

    assert message.startswith(f"audit chain BROKEN at sequence {third.sequence + 1}: rows_beyond_head")
    _chain_is_intact()


def test_unknown_key_id_is_named(committed_db: None) -> None:
    _, second, _ = record_committed(3)

    with owner_forgery() as cursor:
        cursor.execute("UPDATE audit_auditevent SET key_id = 'retired' WHERE sequence = %s", [second.sequence])
        message = _verify_as_owner_expecting_break()

    assert message.startswith(f"audit chain BROKEN at sequence {second.sequence}: unknown_key")
    assert "'retired'" in message
    _chain_is_intact()


def test_verification_result_names_the_first_break_only(committed_db: None) -> None:
    _, second, third = record_committed(3)

    with owner_forgery() as cursor:
        cursor.execute("UPDATE audit_auditevent SET object_id = 'a' WHERE sequence = %s", [third.sequence])
        cursor.execute("UPDATE audit_auditevent SET object_id = 'b' WHERE sequence = %s", [second.sequence])
        with rls.acting_as(WRITER):
            result = verify_chain(using="owner", chunk_size=2)

    assert (result.ok, result.first_bad_sequence, result.reason) == (
        False,
        second.sequence,
        BreakReason.HMAC_MISMATCH,
    )
    assert result.checked == second.sequence - 1
    with rls.acting_as(WRITER):
        assert AuditEvent.objects.get(sequence=second.sequence).object_id == second.object_id
