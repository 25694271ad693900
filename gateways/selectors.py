"""Reads of the payments ledger, scoped to the acting principal."""

from __future__ import annotations

import uuid

from gateways.models import PaymentAttempt
from paymenter import rls
from paymenter.principals import Principal


def payment_attempt_for_return(*, principal: Principal, attempt_id: uuid.UUID) -> PaymentAttempt | None:
    """The attempt a gateway's return URL names, with its invoice; ``None`` if there is none."""
    with rls.acting_as(principal):
        return PaymentAttempt.objects.select_related("invoice").filter(id=attempt_id).first()
