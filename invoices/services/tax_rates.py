"""Effective-dated GST rates (never edited: a new row supersedes)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from audit.actions import AuditAction
from audit.services import audit_record
from audit.unit_of_work import unit_of_work
from invoices.models import TaxRate
from paymenter.principals import Principal


def tax_rate_create(
    *,
    principal: Principal,
    code: str,
    country: str,
    rate: Decimal,
    effective_from: dt.date,
    effective_to: dt.date | None = None,
    description: str = "",
) -> TaxRate:
    """Add an effective-dated rate (rates are never edited: a new row supersedes).

    Audited: a rate decides what every later invoice charges."""
    with unit_of_work(principal):
        tax_rate = TaxRate.objects.create(
            code=code,
            country=country,
            rate=rate,
            effective_from=effective_from,
            effective_to=effective_to,
            description=description,
        )
        audit_record(
            action=AuditAction.TAX_RATE_CREATED,
            principal=principal,
            object_type="tax_rate",
            object_id=str(tax_rate.pk),
            payload={
                "code": code,
                "country": country,
                "rate": f"{rate:.4f}",
                "effective_from": effective_from.isoformat(),
                "effective_to": effective_to.isoformat() if effective_to else None,
            },
        )
    return tax_rate
