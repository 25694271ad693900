"""Writing the audit trail. Services of every app call :func:`audit_record` in their transaction."""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model
from django.db.models.sql import InsertQuery
from django.utils import timezone

from audit import chain
from audit.actions import AuditAction
from audit.errors import AuditChainHeadMissingError, AuditOutsideTransactionError
from audit.models import CHAIN_HEAD_ID, AuditChainHead, AuditEvent
from paymenter import keyring, redaction, request_context, rls
from paymenter.principals import Principal

ANONYMOUS_ACTOR = "anonymous"
REQUEST_ID_MAX_LENGTH = 128
HMAC_KEYS_SETTING = "AUDIT_HMAC_KEYS"


_HEAD_TABLE = AuditChainHead._meta.db_table
# raw SQL on the hot path: one compiled statement less per unit of work
_LOCK_HEAD_SQL = f"SELECT last_sequence, last_hash FROM {_HEAD_TABLE} WHERE id = %s FOR NO KEY UPDATE"  # noqa: S608
_MOVE_HEAD_SQL = f"UPDATE {_HEAD_TABLE} SET last_sequence = %s, last_hash = %s WHERE id = %s"  # noqa: S608 - constant

# Events waiting for the end of the innermost open ``audit_deferred`` block, if any.
_pending: contextvars.ContextVar[list[AuditEvent] | None] = contextvars.ContextVar(
    "paymenter_audit_pending", default=None
)


def audit_record(
    *,
    action: AuditAction,
    principal: Principal | None = None,
    object_type: str = "",
    object_id: str = "",
    customer_id: uuid.UUID | None = None,
    payload: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain, in the caller's open transaction.

    The caller must already be inside ``transaction.atomic`` so that the event commits or
    rolls back with the change it records; otherwise :class:`AuditOutsideTransactionError`.
    ``principal`` defaults to the acting principal (``rls.current_principal()``); with none
    the actor is ``anonymous``. The payload is redacted (card numbers, secrets) and
    normalised to plain JSON before it is signed and stored.

    Inside an :func:`audit_deferred` block (every ``audit.unit_of_work.unit_of_work`` and API request
    opens one) the event is queued and appended, still in this transaction, when the
    block ends; its ``sequence``, ``occurred_at``, ``prev_hash`` and ``hmac`` are set then.
    Otherwise it is appended at once.
    """
    connection = connections[DEFAULT_DB_ALIAS]
    if not connection.in_atomic_block:
        raise AuditOutsideTransactionError()

    actor = principal if principal is not None else rls.current_principal()
    context = request_context.current()
    event = AuditEvent(
        actor_type=actor.actor_type if actor is not None else ANONYMOUS_ACTOR,
        actor_id=actor.actor_id if actor is not None else "",
        action=str(action),
        object_type=object_type,
        object_id=object_id,
        customer_id=customer_id,
        payload=chain.normalise_payload(redaction.redact(dict(payload or {}))),
        request_id=(context.request_id if context is not None else "")[:REQUEST_ID_MAX_LENGTH],
        ip=chain.normalise_ip(context.client_ip if context is not None else None),
    )
    pending = _pending.get()
    if pending is not None:
        pending.append(event)
    else:
        _append_to_chain([event])
    return event


@contextmanager
def audit_deferred() -> Iterator[None]:
    """Queue the block's audit events and append them together when it ends.

    Appending locks the single chain-head row until the transaction ends and so
    serializes every audited write: deferring it to the end of the unit of work keeps that
    section to one INSERT plus the COMMIT (docs/performance.md). Use it *inside* the
    transaction (or savepoint) of the writes it records: when the block raises, its events
    are dropped just as its writes are rolled back. A nested block hands its events to the
    enclosing one; the outermost appends them.
    """
    if not connections[DEFAULT_DB_ALIAS].in_atomic_block:
        raise AuditOutsideTransactionError()
    parent = _pending.get()
    batch: list[AuditEvent] = []
    token = _pending.set(batch)
    try:
        yield
    finally:
        _pending.reset(token)
    if parent is not None:
        parent.extend(batch)
    elif batch:
        _append_to_chain(batch)


def _append_to_chain(events: list[AuditEvent]) -> None:
    """Link and sign ``events`` after the current head, insert them and move the head.

    Locks the single chain-head row (``SELECT ... FOR UPDATE``) until the transaction
    ends, so concurrent writers form one gap-free linear chain. Two round trips whatever
    the number of events: the lock, then one statement that inserts them all and moves the
    head to the last (the head's trigger lets it only advance, migration ``audit.0004``).
    """
    ring = keyring.from_settings(HMAC_KEYS_SETTING)
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(_LOCK_HEAD_SQL, [CHAIN_HEAD_ID])
        head = cursor.fetchone()
    if head is None:
        raise AuditChainHeadMissingError()
    occurred_at = timezone.now()  # taken under the lock: non-decreasing along the chain
    sequence, prev_hash = int(head[0]), str(head[1])
    for event in events:
        sequence += 1
        event.sequence = sequence
        event.occurred_at = occurred_at
        event.prev_hash = prev_hash
        event.key_id = ring.primary_id
        event.hmac = chain.compute_hmac(chain_fields_of(event), key=ring.primary)
        prev_hash = event.hmac
    insert = InsertQuery(AuditEvent)
    insert.insert_values(AuditEvent._meta.concrete_fields, list[Model](events))
    ((insert_sql, insert_params),) = insert.get_compiler(using=DEFAULT_DB_ALIAS).as_sql()
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(
            f"WITH appended AS ({insert_sql}) {_MOVE_HEAD_SQL}",
            [*insert_params, sequence, prev_hash, CHAIN_HEAD_ID],
        )
        if cursor.rowcount != 1:  # the locked row cannot vanish (its trigger refuses DELETE)
            raise AuditChainHeadMissingError()
    for event in events:
        event._state.adding = False  # saved, as bulk_create would leave them
        event._state.db = DEFAULT_DB_ALIAS


def chain_fields_of(event: AuditEvent) -> chain.ChainFields:
    """What the HMAC covers, read from a row (to sign it, or to verify it)."""
    return chain.ChainFields(
        sequence=event.sequence,
        occurred_at=event.occurred_at,
        actor_type=event.actor_type,
        actor_id=event.actor_id,
        action=event.action,
        object_type=event.object_type,
        object_id=event.object_id,
        customer_id=event.customer_id,
        payload=event.payload,
        request_id=event.request_id,
        ip=event.ip,
        prev_hash=event.prev_hash,
        key_id=event.key_id,
    )
