"""The webhook inbox: store each verified delivery once, fast; process it in a worker.

Ingest (:func:`webhook_event_store`) is one short transaction, one statement: ``INSERT ...
ON CONFLICT DO NOTHING`` on the unique ``(gateway, event_id)`` plus, only for the insert that
won, an outbox message (topic :data:`WEBHOOK_TOPIC`). A duplicate delivery - a retry, a replay
re-signed with a fresh timestamp, 50 at once - writes nothing. The outbox makes a broker
outage delay processing, never lose it (docs/outbox.md).

Processing (:func:`webhook_event_process`, called by the outbox worker through the
subscription table) never trusts the body: it asks the gateway about what the event names
(``payment_fetch``, ``refunds_fetch``, ``disputes_fetch``, ``fraud_warning_fetch``) and
records what the gateway says through the ledger (``ledger``/``reconciliation`` for
payments, capturing an approved one; ``refunds``; ``disputes``), each idempotent under
concurrency. Each try is recorded on the event (attempts, last error,
status). A gateway that is down is retried with the outbox's backoff; a refusal that
retrying cannot fix (a tampered invoice, an invoice mismatch) marks the event ``failed``
for staff, who may re-process it from the admin (audited).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import audit_record
from audit.unit_of_work import unit_of_work
from gateways.base import Gateway, GatewayEvent, GatewayEventKind, GatewayRequestError, GatewayUnavailableError
from gateways.errors import WebhookEventNotFoundError
from gateways.models import WebhookEvent, WebhookEventStatus
from gateways.registry import gateway_for
from gateways.services.disputes import disputes_settle, fraud_warning_record
from gateways.services.ledger import PaymentInvoiceMismatchError
from gateways.services.reconciliation import payment_report_settle
from gateways.services.refunds import refunds_settle
from paymenter import rls
from paymenter.errors import PaymenterError
from paymenter.models import OutboxMessage
from paymenter.outbox import OutboxHandlerError, outbox_enqueue_if_inserted
from paymenter.principals import Principal, SystemPrincipal

logger = logging.getLogger(__name__)

WEBHOOK_TOPIC = "gateways.webhook_event"
INGEST_PRINCIPAL = SystemPrincipal(label="webhook:ingest")
PROCESS_PRINCIPAL = SystemPrincipal(label="worker:webhooks")
LAST_ERROR_MAX_LENGTH = 500
DONE = (WebhookEventStatus.PROCESSED, WebhookEventStatus.IGNORED)

_INSERT = """
INSERT INTO gateways_webhookevent
    (id, gateway, event_id, event_type, object_id, body, signed_at, received_at, status, attempts, last_error)
VALUES (%s, %s, %s, %s, %s, %s, %s, now(), %s, 0, '')
ON CONFLICT (gateway, event_id) DO NOTHING
RETURNING id
"""


def webhook_event_store(*, event: GatewayEvent, body: bytes, signed_at: datetime | None) -> uuid.UUID | None:
    """Store a verified delivery once; returns its id, or ``None`` for a duplicate.

    The body is kept as delivered (it is what the signature covered), encrypted at rest,
    bound to the row's id like every encrypted field (so it is encrypted before the insert).
    The insert and its outbox message are one statement, sent with the RLS scope as one
    round trip that is its own transaction (``outbox_enqueue_if_inserted``): committed
    before this returns, and a duplicate writes nothing.
    """
    row_id = uuid.uuid4()
    unsaved = WebhookEvent(id=row_id, body=body.decode("utf-8"))
    encrypted_body = WebhookEvent._meta.get_field("body").pre_save(unsaved, add=True)
    message_id = outbox_enqueue_if_inserted(
        principal=INGEST_PRINCIPAL,
        insert_sql=_INSERT,
        insert_params=[
            row_id,
            event.gateway,
            event.event_id,
            event.event_type,
            event.object_id,
            encrypted_body,
            signed_at,
            WebhookEventStatus.RECEIVED,
        ],
        topic=WEBHOOK_TOPIC,
        payload={"webhook_event_id": str(row_id), "gateway": event.gateway, "type": event.event_type},
        # its own key: one event never waits behind another (the ledger orders effects). The
        # row's id, not the gateway's event id: that may be longer than the key's column
        ordering_key=f"webhook:{row_id}",
    )
    return row_id if message_id is not None else None


def webhook_event_deliver(message: OutboxMessage) -> None:
    """The outbox handler of :data:`WEBHOOK_TOPIC` (``events/subscriptions.py``)."""
    webhook_event_process(webhook_event_id=str(message.payload["webhook_event_id"]))


def _outcome_record(*, event_pk: uuid.UUID, status: WebhookEventStatus, error: str = "") -> None:
    with rls.acting_as(PROCESS_PRINCIPAL), transaction.atomic():
        now = timezone.now()
        WebhookEvent.objects.filter(pk=event_pk).exclude(status__in=DONE).update(
            status=status,
            last_error=error[:LAST_ERROR_MAX_LENGTH],
            processed_at=now if status in DONE else None,
        )


def webhook_event_process(
    *, webhook_event_id: uuid.UUID | str, principal: Principal = PROCESS_PRINCIPAL
) -> WebhookEventStatus:
    """Act on one stored event, once: fetch the truth back from the gateway and settle it.

    Raises :class:`~paymenter.outbox.OutboxHandlerError` when the gateway is unreachable
    (the outbox retries later); other failures are recorded on the event as ``failed``.
    """
    with rls.acting_as(principal), transaction.atomic():
        stored = WebhookEvent.objects.filter(pk=webhook_event_id).first()
        if stored is None:
            raise WebhookEventNotFoundError()
        if stored.status in DONE:
            return WebhookEventStatus(stored.status)
        WebhookEvent.objects.filter(pk=stored.pk).update(attempts=stored.attempts + 1)
    try:
        gateway = gateway_for(stored.gateway)
        event = gateway.webhook_parse(str(stored.body).encode("utf-8"))
        ignored_reason = _event_act(principal=principal, gateway=gateway, event=event)
    except GatewayUnavailableError as exc:
        _outcome_record(event_pk=stored.pk, status=WebhookEventStatus.RECEIVED, error=f"gateway unavailable: {exc}")
        raise OutboxHandlerError(f"gateway unavailable: {exc}") from exc
    except (PaymenterError, GatewayRequestError, PaymentInvoiceMismatchError) as exc:
        reason = exc.code if isinstance(exc, PaymenterError) else str(exc)
        logger.error(  # noqa: TRY400 - an expected refusal, recorded for staff; no traceback wanted
            "webhook event %s (%s) failed: %s", stored.event_id, stored.event_type, reason
        )
        _outcome_record(event_pk=stored.pk, status=WebhookEventStatus.FAILED, error=reason)
        return WebhookEventStatus.FAILED
    status = WebhookEventStatus.IGNORED if ignored_reason else WebhookEventStatus.PROCESSED
    _outcome_record(event_pk=stored.pk, status=status, error=ignored_reason)
    return status


def _event_act(*, principal: Principal, gateway: Gateway, event: GatewayEvent) -> str:
    """Fetch back what ``event`` is about and record it; returns why nothing was recorded
    ("" when something was)."""
    recorded_by = f"webhook:{event.event_type}"
    if event.kind is GatewayEventKind.PAYMENT:
        reported = gateway.payment_fetch(session_id=event.session_id, transaction_id=event.transaction_id)
        if reported is None:
            return "no payment at the gateway"
        return payment_report_settle(principal=principal, reported=reported, recorded_by=recorded_by).ignored_reason
    if event.kind is GatewayEventKind.REFUND:
        refunds = gateway.refunds_fetch(transaction_id=event.transaction_id, refund_id=event.refund_id)
        settled = refunds_settle(principal=principal, reported=refunds, recorded_by=recorded_by)
        return "" if settled else "no refund of a payment recorded here"
    if event.kind is GatewayEventKind.DISPUTE:
        disputes = gateway.disputes_fetch(transaction_id=event.transaction_id, dispute_id=event.dispute_id)
        settled_disputes = disputes_settle(principal=principal, reported=disputes, recorded_by=recorded_by)
        return "" if settled_disputes else "no dispute of a payment recorded here"
    if event.kind is GatewayEventKind.FRAUD_WARNING:
        warning = gateway.fraud_warning_fetch(warning_id=event.object_id)
        if warning is None or fraud_warning_record(principal=principal, reported=warning) is None:
            return "no warning about a payment recorded here"
        return ""
    return "event type not acted on"


def webhook_event_reprocess(*, principal: Principal, webhook_event_id: uuid.UUID | str) -> WebhookEventStatus:
    """Staff: process a ``failed`` event again (audited). Processed events stay as they are."""
    with unit_of_work(principal):
        stored = WebhookEvent.objects.select_for_update(no_key=True).filter(pk=webhook_event_id).first()
        if stored is None:
            raise WebhookEventNotFoundError()
        if stored.status in DONE:
            return WebhookEventStatus(stored.status)
        audit_record(
            action=AuditAction.WEBHOOK_EVENT_REPROCESSED,
            principal=principal,
            object_type="webhook_event",
            object_id=str(stored.pk),
            payload={"gateway": stored.gateway, "event_id": stored.event_id, "event_type": stored.event_type},
        )
    try:
        return webhook_event_process(webhook_event_id=webhook_event_id, principal=principal)
    except OutboxHandlerError:
        return WebhookEventStatus.RECEIVED
