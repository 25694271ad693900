"""Reading the audit trail. Row-level security shows it to staff and system scope only."""

from __future__ import annotations

from django.db.models import QuerySet

from audit.models import AuditEvent
from paymenter.principals import CustomerPrincipal, Principal


def audit_events_list(*, principal: Principal) -> QuerySet[AuditEvent]:
    """Every event in chain order for staff and system; nothing for a customer user."""
    if isinstance(principal, CustomerPrincipal):
        return AuditEvent.objects.none()
    return AuditEvent.objects.order_by("sequence")
