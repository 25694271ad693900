"""Writing the audit trail. Services of every app call :func:`audit_record` in their transaction."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
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

    Appending locks the single chain-head row (``SELECT ... FOR UPDATE``) until the
    caller's transaction ends, so concurrent writers form one gap-free linear chain. Keep
    the audit call near the end of the transaction to hold that lock briefly.
    """
    connection = connections[DEFAULT_DB_ALIAS]
    if not connection.in_atomic_block:
        raise AuditOutsideTransactionError()

    actor = principal if principal is not None else rls.current_principal()
    context = request_context.current()
    ring = keyring.from_settings(HMAC_KEYS_SETTING)
    stored_payload: dict[str, Any] = chain.normalise_payload(redaction.redact(dict(payload or {})))

    try:
        head = AuditChainHead.objects.select_for_update(no_key=True).get(pk=CHAIN_HEAD_ID)
    except AuditChainHead.DoesNotExist as exc:
        raise AuditChainHeadMissingError() from exc

    fields = chain.ChainFields(
        sequence=head.last_sequence + 1,
        occurred_at=timezone.now(),  # taken under the lock: non-decreasing along the chain
        actor_type=actor.actor_type if actor is not None else ANONYMOUS_ACTOR,
        actor_id=actor.actor_id if actor is not None else "",
        action=str(action),
        object_type=object_type,
        object_id=object_id,
        customer_id=customer_id,
        payload=stored_payload,
        request_id=(context.request_id if context is not None else "")[:REQUEST_ID_MAX_LENGTH],
        ip=chain.normalise_ip(context.client_ip if context is not None else None),
        prev_hash=head.last_hash,
        key_id=ring.primary_id,
    )
    signature = chain.compute_hmac(fields, key=ring.primary)
    event = AuditEvent(
        sequence=fields.sequence,
        occurred_at=fields.occurred_at,
        actor_type=fields.actor_type,
        actor_id=fields.actor_id,
        action=fields.action,
        object_type=fields.object_type,
        object_id=fields.object_id,
        customer_id=fields.customer_id,
        payload=fields.payload,
        request_id=fields.request_id,
        ip=fields.ip,
        prev_hash=fields.prev_hash,
        hmac=signature,
        key_id=fields.key_id,
    )
    event.save(force_insert=True)

    head.last_sequence = fields.sequence
    head.last_hash = signature
    head.save(update_fields=["last_sequence", "last_hash"])
    return event
