"""Writing the audit trail. Services of every app call :func:`audit_record` in their transaction."""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone

from audit import chain
from audit.actions import AuditAction
from audit.errors import AuditChainHeadMissingError, AuditOutsideTransactionError
from audit.models import CHAIN_HEAD_ID, AuditChainHead, AuditEvent
from paymenter import keyring, redaction, request_context, rls
from paymenter.principals import Principal
from paymenter.sql_rows import insert_sql, rows_saved

ANONYMOUS_ACTOR = "anonymous"
REQUEST_ID_MAX_LENGTH = 128
HMAC_KEYS_SETTING = "AUDIT_HMAC_KEYS"


_HEAD_TABLE = AuditChainHead._meta.db_table
# raw SQL on the hot path: one compiled statement less per unit of work
_LOCK_HEAD_SQL = f"SELECT last_sequence, last_hash FROM {_HEAD_TABLE} WHERE id = %s FOR NO KEY UPDATE"  # noqa: S608
_NOTHING_SQL = "SELECT 1"
_MOVE_HEAD_SQL = f"UPDATE {_HEAD_TABLE} SET last_sequence = %s, last_hash = %s WHERE id = %s"  # noqa: S608 - constant


@dataclass(frozen=True)
class TailInsert:
    """An INSERT sent with the chain-head lock when the unit of work ends (:func:`tail_insert`).

    ``sql`` is one INSERT without a WITH clause of its own; it becomes the common table
    expression ``name`` (unique within the unit of work: take it from :func:`tail_name`),
    so a later part may refer to it (``... WHERE (SELECT count(*) FROM <name>) = 3`` makes it
    run after that part).
    """

    name: str
    sql: str
    params: tuple[Any, ...]


@dataclass
class _Batch:
    """What waits for the end of the outermost ``audit_deferred`` block."""

    events: list[AuditEvent] = field(default_factory=list)
    inserts: list[TailInsert] = field(default_factory=list)
    #: the enclosing block's batch: a nested block hands its events and inserts to it
    parent: _Batch | None = None
    #: tail names handed out so far (kept on the outermost batch, see :func:`tail_name`)
    names: int = 0


# The batch of the innermost open ``audit_deferred`` block, if any.
_pending: contextvars.ContextVar[_Batch | None] = contextvars.ContextVar("paymenter_audit_pending", default=None)


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
        pending.events.append(event)
    else:
        _append_to_chain([event], [])
    return event


def tail_name(prefix: str) -> str:
    """A name for a :class:`TailInsert`, unique within the unit of work and the same from
    one unit of work to the next that runs the same code.

    The same names make the same statement text, and psycopg parses a statement's text
    once per process (its query cache) instead of once per request: for the invoice
    creation's tail statement that parse cost more than everything else psycopg did for
    the request (docs/performance.md). Outside an ``audit_deferred`` block the rows are
    written at once, in a statement of their own, and the name is merely unique.
    """
    batch = _pending.get()
    if batch is None:
        return f"{prefix}_{uuid.uuid4().hex}"
    while batch.parent is not None:
        batch = batch.parent
    batch.names += 1
    return f"{prefix}_{batch.names}"


def tail_insert(*inserts: TailInsert) -> None:
    """Write ``inserts`` at the end of the unit of work, in the statement that takes the
    chain-head lock: one round trip for the unit of work's last rows instead of one each
    (docs/performance.md). Outside an ``audit_deferred`` block they are written at once.

    Only for rows nothing reads later in the same unit of work: they do not exist until it
    ends. A failure (a constraint) surfaces when the block ends and rolls back with the rest.
    """
    pending = _pending.get()
    if pending is not None:
        pending.inserts.extend(inserts)
        return
    _write_inserts(list(inserts), then=_NOTHING_SQL, params=[])


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
    batch = _Batch(parent=parent)
    token = _pending.set(batch)
    try:
        yield
    finally:
        _pending.reset(token)
    if parent is not None:
        parent.events.extend(batch.events)
        parent.inserts.extend(batch.inserts)
    elif batch.events:
        _append_to_chain(batch.events, batch.inserts)
    elif batch.inserts:
        _write_inserts(batch.inserts, then=_NOTHING_SQL, params=[])


def _write_inserts(inserts: list[TailInsert], *, then: str, params: list[Any]) -> Any:
    """One statement: every insert as a common table expression, then ``then`` (a SELECT);
    returns its first row."""
    with_clause = ", ".join(f"{part.name} AS ({part.sql})" for part in inserts)
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(
            f"WITH {with_clause} {then}" if inserts else then,
            [*(value for part in inserts for value in part.params), *params],
        )
        return cursor.fetchone()


def _append_to_chain(events: list[AuditEvent], inserts: list[TailInsert]) -> None:
    """Link and sign ``events`` after the current head, insert them and move the head.

    Locks the single chain-head row (``SELECT ... FOR UPDATE``) until the transaction
    ends, so concurrent writers form one gap-free linear chain. Two round trips whatever
    the number of events: the lock (sent with the unit of work's :func:`tail_insert` rows),
    then one statement that inserts the events and moves the head to the last (the head's
    trigger lets it only advance, migration ``audit.0004``).
    """
    ring = keyring.from_settings(HMAC_KEYS_SETTING)
    head = _write_inserts(inserts, then=_LOCK_HEAD_SQL, params=[CHAIN_HEAD_ID])
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
    events_sql, events_params = insert_sql(AuditEvent, events)
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(
            f"WITH appended AS ({events_sql}) {_MOVE_HEAD_SQL}",
            [*events_params, sequence, prev_hash, CHAIN_HEAD_ID],
        )
        if cursor.rowcount != 1:  # the locked row cannot vanish (its trigger refuses DELETE)
            raise AuditChainHeadMissingError()
    rows_saved(events)


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
