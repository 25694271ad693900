"""Verifying the whole audit chain: every link, every HMAC, no gap, nothing beyond the head.

Run it with system or staff scope (the SELECT policy hides audit rows from anyone else).
Rows are streamed in sequence order with a server-side cursor, so memory stays flat on
a chain of any length. Writers may keep appending meanwhile: verification covers the
rows up to the chain head read at the start, and then checks in one statement (one
snapshot) that no row exists beyond the head as it is at that moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from audit import chain
from audit.models import CHAIN_HEAD_ID, GENESIS_HASH, AuditChainHead, AuditEvent
from audit.services import HMAC_KEYS_SETTING, chain_fields_of
from paymenter import keyring

DEFAULT_CHUNK_SIZE = 2000


class BreakReason(StrEnum):
    HMAC_MISMATCH = "hmac_mismatch"  # the row was edited, or forged without the key
    UNKNOWN_KEY = "unknown_key"  # signed with a key id the keyring does not hold
    PREV_HASH_MISMATCH = "prev_hash_mismatch"  # the link to the previous row is broken
    MISSING_ROW = "missing_row"  # a sequence number is absent (row deleted)
    TAIL_TRUNCATED = "tail_truncated"  # the head names rows that no longer exist
    HEAD_HASH_MISMATCH = "head_hash_mismatch"  # the head's hash is not the last row's hmac
    ROWS_BEYOND_HEAD = "rows_beyond_head"  # rows appended without moving the head
    HEAD_MISSING = "head_missing"


@dataclass(frozen=True)
class VerificationResult:
    ok: bool
    checked: int
    first_bad_sequence: int | None = None
    reason: BreakReason | None = None
    detail: str = ""
    head_sequence: int = 0
    head_hash: str = GENESIS_HASH


def _rows_beyond_head(*, using: str) -> int | None:
    """The lowest sequence above the head, read in the same snapshot as the head itself."""
    table = AuditEvent._meta.db_table
    head_table = AuditChainHead._meta.db_table
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT min(e.sequence) FROM {table} e "  # noqa: S608 - table names from model meta
            f"WHERE e.sequence > (SELECT h.last_sequence FROM {head_table} h WHERE h.id = %s)",
            [CHAIN_HEAD_ID],
        )
        row = cursor.fetchone()
    return None if row is None or row[0] is None else int(row[0])


def verify_chain(*, using: str = DEFAULT_DB_ALIAS, chunk_size: int = DEFAULT_CHUNK_SIZE) -> VerificationResult:
    """Check the chain from the genesis row to the head; report the first break found."""
    ring = keyring.from_settings(HMAC_KEYS_SETTING)
    # A server-side cursor needs a transaction; this reuses the caller's when there is one.
    with transaction.atomic(using=using):
        head = AuditChainHead.objects.using(using).filter(pk=CHAIN_HEAD_ID).first()
        if head is None:
            return VerificationResult(
                ok=False, checked=0, reason=BreakReason.HEAD_MISSING, detail="the chain head row is missing"
            )

        def broken(sequence: int, reason: BreakReason, detail: str, checked: int) -> VerificationResult:
            return VerificationResult(
                ok=False,
                checked=checked,
                first_bad_sequence=sequence,
                reason=reason,
                detail=detail,
                head_sequence=head.last_sequence,
                head_hash=head.last_hash,
            )

        expected_sequence = 1
        prev_hash = GENESIS_HASH
        checked = 0
        events = (
            AuditEvent.objects.using(using)
            .filter(sequence__lte=head.last_sequence)
            .order_by("sequence")
            .iterator(chunk_size=chunk_size)
        )
        for event in events:
            if event.sequence != expected_sequence:
                return broken(
                    expected_sequence,
                    BreakReason.MISSING_ROW,
                    f"row #{expected_sequence} is missing (next row is #{event.sequence})",
                    checked,
                )
            try:
                key = ring.get(event.key_id)
            except keyring.UnknownKeyError:
                return broken(
                    event.sequence,
                    BreakReason.UNKNOWN_KEY,
                    f"row #{event.sequence} names unknown key id {event.key_id!r}",
                    checked,
                )
            if not chain.hmac_matches(chain_fields_of(event), key=key, expected=event.hmac):
                return broken(
                    event.sequence,
                    BreakReason.HMAC_MISMATCH,
                    f"row #{event.sequence} does not match its hmac (edited or forged)",
                    checked,
                )
            if event.prev_hash != prev_hash:
                return broken(
                    event.sequence,
                    BreakReason.PREV_HASH_MISMATCH,
                    f"row #{event.sequence} does not link to row #{event.sequence - 1}",
                    checked,
                )
            prev_hash = event.hmac
            expected_sequence += 1
            checked += 1

        if checked != head.last_sequence:
            return broken(
                expected_sequence,
                BreakReason.TAIL_TRUNCATED,
                f"the chain head records {head.last_sequence} rows but the chain ends at #{checked}",
                checked,
            )
        if prev_hash != head.last_hash:
            return broken(
                head.last_sequence,
                BreakReason.HEAD_HASH_MISMATCH,
                f"the chain head hash does not match row #{head.last_sequence}",
                checked,
            )
        beyond = _rows_beyond_head(using=using)
        if beyond is not None:
            return broken(beyond, BreakReason.ROWS_BEYOND_HEAD, f"row #{beyond} lies beyond the chain head", checked)
        return VerificationResult(ok=True, checked=checked, head_sequence=head.last_sequence, head_hash=head.last_hash)
