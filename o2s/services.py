"""Writes of the O2S integration: API keys (create, revoke, record use) and invoices O2S
asks for.

An API key's plaintext exists only in :func:`api_key_create`'s return value; it is never
logged or audited. O2S names catalogue products and quantities; every amount comes from
the catalogue (``billing``) and the tax rules (``invoices``). A line with an explicit unit
amount (a *custom line*) is accepted only from an API key granted
``can_invoice_custom_lines``, and each invoice carrying one is audited
(``invoice.custom_lines``) in the transaction that creates it.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import logging
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import audit_record
from audit.unit_of_work import unit_of_work
from billing.models import ApiKey
from billing.selectors import catalogue_price_for
from invoices.models import Invoice
from invoices.pricing import InvoiceLineInput, invoice_price
from invoices.services import InvoicePreview, invoice_create_priced, invoice_preview
from invoices.services.auditing import invoice_audit_record
from o2s.errors import (
    ApiKeyNotFoundError,
    CustomLinesNotPermittedError,
    InvalidApiKeySpecError,
)
from o2s.selectors import (
    KEY_PREFIX,
    LOOKUP_ID_LENGTH,
    SECRET_BYTES,
    O2SInvoiceContext,
    api_key_hash,
    api_key_lookup_filter,
    o2s_invoice_context,
)
from paymenter import rls
from paymenter.money import normalize_currency
from paymenter.principals import ApiKeyPrincipal, Principal

logger = logging.getLogger(__name__)


_NAME_MAX_LENGTH = 100


TOUCH_INTERVAL = timedelta(minutes=1)  # last_used_at is written at most this often per key


_CREATE_ATTEMPTS = 3  # a lookup_id collision (2^-48 per pair) is retried, never surfaced


def _new_key() -> tuple[str, str]:
    lookup_id = secrets.token_hex(LOOKUP_ID_LENGTH // 2)
    secret = base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii").rstrip("=").lower()
    return lookup_id, f"{KEY_PREFIX}_{lookup_id}_{secret}"


def _clean_networks(allowed_networks: object) -> list[str]:
    if isinstance(allowed_networks, str) or not isinstance(allowed_networks, list | tuple):
        raise InvalidApiKeySpecError({"allowed_networks": ["a list of CIDRs, e.g. ['10.0.0.0/8']"]})
    if not allowed_networks:
        raise InvalidApiKeySpecError({"allowed_networks": ["at least one network is required"]})
    cleaned: list[str] = []
    problems: list[str] = []
    for item in allowed_networks:
        try:
            network = ipaddress.ip_network(str(item).strip(), strict=False)
        except ValueError:
            problems.append(f"not an IP network: {str(item)[:64]!r}")
            continue
        if str(network) not in cleaned:
            cleaned.append(str(network))
    if problems:
        raise InvalidApiKeySpecError({"allowed_networks": problems})
    return cleaned


def _validate(
    *, name: str, expires_at: datetime | None, rate_limit_per_minute: int, now: datetime
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if not name.strip():
        errors["name"] = ["required"]
    elif len(name.strip()) > _NAME_MAX_LENGTH:
        errors["name"] = [f"at most {_NAME_MAX_LENGTH} characters"]
    if expires_at is not None:
        if timezone.is_naive(expires_at):
            errors["expires_at"] = ["must carry a time zone"]
        elif expires_at <= now:
            errors["expires_at"] = ["must be in the future"]
    if isinstance(rate_limit_per_minute, bool) or not isinstance(rate_limit_per_minute, int):
        errors["rate_limit_per_minute"] = ["must be an integer"]
    elif rate_limit_per_minute < 1:
        errors["rate_limit_per_minute"] = ["must be at least 1"]
    return errors


def api_key_create(
    *,
    principal: Principal,
    name: str,
    allowed_networks: list[str],
    expires_at: datetime | None = None,
    can_invoice_custom_lines: bool = False,
    rate_limit_per_minute: int = 600,
) -> tuple[ApiKey, str]:
    """A new key and its plaintext, which exists only in the return value.

    Several keys may be active at once (rotation: create the new one, switch O2S, revoke
    the old one). The audit record names the key by id and lookup id, never the secret.
    """
    now = timezone.now()
    errors = _validate(name=name, expires_at=expires_at, rate_limit_per_minute=rate_limit_per_minute, now=now)
    try:
        networks = _clean_networks(allowed_networks)
    except InvalidApiKeySpecError as exc:
        errors.update(exc.fields)
    if errors:
        raise InvalidApiKeySpecError(errors)

    with unit_of_work(principal):
        for attempt in range(_CREATE_ATTEMPTS):
            lookup_id, raw = _new_key()
            try:
                with transaction.atomic():  # a savepoint: a lookup_id collision is retried
                    api_key = ApiKey.objects.create(
                        name=name.strip(),
                        lookup_id=lookup_id,
                        key_hash=api_key_hash(raw),
                        allowed_networks=networks,
                        can_invoice_custom_lines=can_invoice_custom_lines,
                        rate_limit_per_minute=rate_limit_per_minute,
                        expires_at=expires_at,
                    )
            except IntegrityError:
                if attempt == _CREATE_ATTEMPTS - 1:
                    raise
                continue
            break
        audit_record(
            action=AuditAction.API_KEY_CREATED,
            principal=principal,
            object_type="api_key",
            object_id=str(api_key.pk),
            payload={
                "name": api_key.name,
                "lookup_id": api_key.lookup_id,
                "allowed_networks": networks,
                "expires_at": expires_at.isoformat() if expires_at else None,
                "can_invoice_custom_lines": can_invoice_custom_lines,
                "rate_limit_per_minute": rate_limit_per_minute,
            },
        )
    logger.info("API key created: lookup id %s (%s)", api_key.lookup_id, api_key.pk)
    return api_key, raw


def api_key_revoke(*, principal: Principal, lookup_id_or_id: str) -> ApiKey:
    """Revoke a key by id, lookup id or its displayed form (``pmk_<lookup_id>…``).

    Revoking a revoked key changes nothing and records nothing (idempotent).
    """
    query = api_key_lookup_filter(lookup_id_or_id)
    with unit_of_work(principal):
        api_key = ApiKey.objects.select_for_update(no_key=True).filter(query).first()
        if api_key is None:
            raise ApiKeyNotFoundError()
        if api_key.revoked_at is not None:
            return api_key
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        audit_record(
            action=AuditAction.API_KEY_REVOKED,
            principal=principal,
            object_type="api_key",
            object_id=str(api_key.pk),
            payload={"name": api_key.name, "lookup_id": api_key.lookup_id},
        )
    logger.info("API key revoked: lookup id %s (%s)", api_key.lookup_id, api_key.pk)
    return api_key


def api_key_touch(api_key: ApiKey) -> None:
    """Record use, at most once per :data:`TOUCH_INTERVAL` per key.

    ``api_key`` was just loaded to authenticate, so a recent ``last_used_at`` skips the
    write; otherwise the conditional UPDATE lets only one of many concurrent requests
    write the row.
    """
    now = timezone.now()
    if api_key.last_used_at is not None and api_key.last_used_at >= now - TOUCH_INTERVAL:
        return  # the row was just read for authentication: known fresh, no round trip
    ApiKey.objects.filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - TOUCH_INTERVAL), pk=api_key.pk
    ).update(last_used_at=now)
    api_key.last_used_at = now


@dataclass(frozen=True)
class O2SLine:
    """One requested line: a catalogue product, or a custom line (description + amount)."""

    quantity: int
    product_code: str | None = None
    description: str | None = None
    unit_amount_minor: int | None = None
    period_start: dt.date | None = None
    period_end: dt.date | None = None

    @property
    def is_custom(self) -> bool:
        return self.product_code is None


def _priced_inputs(
    *,
    principal: ApiKeyPrincipal,
    currency: str,
    lines: Sequence[O2SLine],
    customer_id: uuid.UUID | None,
    customer_external_id: str | None,
) -> tuple[O2SInvoiceContext, list[InvoiceLineInput], list[int]]:
    """The customer, the line inputs priced from the catalogue, and the indexes of custom
    lines; every refusal of an O2S invoice but the pricing's own happens here, before any
    write. Refuses custom lines unless the key may send them. One query
    (``o2s_invoice_context``); runs in the caller's scope."""
    context = o2s_invoice_context(
        principal=principal,
        customer_id=customer_id,
        customer_external_id=customer_external_id,
        currency=currency,
        product_codes={line.product_code for line in lines if line.product_code is not None},
    )
    custom = [index for index, line in enumerate(lines) if line.is_custom]
    if custom and not principal.can_invoice_custom_lines:
        raise CustomLinesNotPermittedError(positions=custom)
    inputs: list[InvoiceLineInput] = []
    for index, line in enumerate(lines):
        if line.product_code is None:
            inputs.append(
                InvoiceLineInput(
                    description=line.description or "",
                    quantity=line.quantity,
                    unit_amount_minor=line.unit_amount_minor if line.unit_amount_minor is not None else -1,
                    period_start=line.period_start,
                    period_end=line.period_end,
                )
            )
            continue
        entry = catalogue_price_for(
            context.catalogue, code=line.product_code, currency=currency, field=f"lines.{index}.product_code"
        )
        inputs.append(
            InvoiceLineInput(
                description=line.description or entry.description,
                quantity=line.quantity,
                unit_amount_minor=entry.unit_amount_minor if entry.unit_amount_minor is not None else -1,
                period_start=line.period_start,
                period_end=line.period_end,
                product_code=entry.code,
                tax_treatment=entry.tax_treatment,
            )
        )
    return context, inputs, custom


def o2s_invoice_create(
    *,
    principal: ApiKeyPrincipal,
    currency: str,
    lines: Sequence[O2SLine],
    customer_id: uuid.UUID | None = None,
    customer_external_id: str | None = None,
) -> Invoice:
    """Create and issue an invoice for O2S, in one transaction with its audit records.

    Everything that reads or can refuse comes first (one query for customer, catalogue and
    GST rate, then pricing); the writes follow in a unit of work without a savepoint, and
    the invoice number is taken last among them (docs/performance.md). The invoice comes
    back with its customer and lines loaded, to be answered from memory."""
    currency = normalize_currency(currency)
    with rls.acting_as(principal):
        context, inputs, custom = _priced_inputs(
            principal=principal,
            currency=currency,
            lines=lines,
            customer_id=customer_id,
            customer_external_id=customer_external_id,
        )
        priced = invoice_price(
            customer=context.customer,
            currency=currency,
            lines=inputs,
            on_date=context.known_rate.on,
            known_rate=context.known_rate,
        )
    with unit_of_work(principal, savepoint=False):
        invoice = invoice_create_priced(principal=principal, customer=context.customer, priced=priced, issue=True)
        if custom:
            invoice_audit_record(
                action=AuditAction.INVOICE_CUSTOM_LINES,
                principal=principal,
                invoice=invoice,
                payload={
                    "api_key": principal.name,
                    "lines": [
                        {
                            "position": index + 1,
                            "description": inputs[index].description,
                            "quantity": inputs[index].quantity,
                            "unit_amount_minor": inputs[index].unit_amount_minor,
                        }
                        for index in custom
                    ],
                },
            )
    return invoice


def o2s_invoice_preview(
    *,
    principal: ApiKeyPrincipal,
    currency: str,
    lines: Sequence[O2SLine],
    customer_id: uuid.UUID | None = None,
    customer_external_id: str | None = None,
) -> InvoicePreview:
    """``o2s_invoice_create``'s computation and refusals; nothing stored, nothing audited."""
    currency = normalize_currency(currency)
    with rls.acting_as(principal):
        context, inputs, _ = _priced_inputs(
            principal=principal,
            currency=currency,
            lines=lines,
            customer_id=customer_id,
            customer_external_id=customer_external_id,
        )
        return invoice_preview(
            principal=principal,
            customer=context.customer,
            lines=inputs,
            currency=currency,
            known_rate=context.known_rate,
        )
