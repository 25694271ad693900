"""Reading the audit trail. Row-level security shows it to staff and system scope only."""

from __future__ import annotations

from django.db.models import QuerySet

from audit.models import CHAIN_HEAD_ID, AuditChainHead, AuditEvent
from paymenter.principals import CustomerPrincipal, Principal


def audit_events_list(*, principal: Principal) -> QuerySet[AuditEvent]:
    """Every event in chain order for staff and system; nothing for a customer user."""
    if isinstance(principal, CustomerPrincipal):
        return AuditEvent.objects.none()
    return AuditEvent.objects.order_by("sequence")


def audit_events_for_object(*, principal: Principal, object_type: str, object_id: str) -> QuerySet[AuditEvent]:
    return audit_events_list(principal=principal).filter(object_type=object_type, object_id=object_id)


def audit_chain_head_get() -> AuditChainHead:
    return AuditChainHead.objects.get(pk=CHAIN_HEAD_ID)
