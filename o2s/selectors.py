"""Reads of the O2S integration: API keys (format, authentication, allowlist) and the
invoices and customers an O2S request names.

A key reads ``pmk_<lookup_id>_<secret>``: ``lookup_id`` is 12 hex characters (public; it
finds the row and names the key in logs and the audit trail), ``secret`` is 32 random bytes
(256 bits) in lowercase unpadded base32 (52 characters of ``a-z2-7``). Only the SHA-256 hex
digest of the whole key is stored, and it is compared with :func:`hmac.compare_digest`
(docs/api-keys.md).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import re
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from billing.models import ApiKey, Customer
from billing.selectors import (
    CatalogueEntry,
    catalogue_entries_parse,
    catalogue_entries_sql,
)
from invoices import tax
from invoices.errors import InvoiceNotFoundError
from invoices.models import Invoice, InvoiceStatus, TaxCode
from invoices.pricing import seller_today
from invoices.selectors import invoices_for_principal
from o2s.errors import (
    ApiKeyNotFoundError,
    ApiKeyRefusalReason,
    ApiKeyRefusedError,
    UnknownCustomerError,
)
from paymenter import rls
from paymenter.client_ip import parse_ip
from paymenter.principals import ApiKeyPrincipal, Principal
from paymenter.sql_rows import row_fetch

logger = logging.getLogger(__name__)


KEY_PREFIX = "pmk"


LOOKUP_ID_LENGTH = 12  # hex characters (48 bits: a public row id, not a secret)


SECRET_BYTES = 32  # 256 bits of randomness


SECRET_LENGTH = 52  # len(base32(32 bytes)) without padding


_KEY_RE = re.compile(
    rf"^{KEY_PREFIX}_(?P<lookup_id>[0-9a-f]{{{LOOKUP_ID_LENGTH}}})_(?P<secret>[a-z2-7]{{{SECRET_LENGTH}}})$"
)


_LOOKUP_ID_RE = re.compile(rf"^(?:{KEY_PREFIX}_)?(?P<lookup_id>[0-9a-f]{{{LOOKUP_ID_LENGTH}}})…?$")


_KEY_BY_LOOKUP_ID_SQL = f"SELECT * FROM {ApiKey._meta.db_table} WHERE lookup_id = %s"  # noqa: S608 - constant table


_DUMMY_HASH = hashlib.sha256(b"pmk-no-such-key").hexdigest()


def api_key_hash(raw: str) -> str:
    """SHA-256 hex of the whole key. A plain hash suffices: the key has 256 random bits."""
    return hashlib.sha256(raw.encode("ascii")).hexdigest()


def api_key_display(api_key: ApiKey) -> str:
    """How a key is named to people: its public part only."""
    return f"{KEY_PREFIX}_{api_key.lookup_id}…"


def api_key_lookup_filter(lookup_id_or_id: str) -> Q:
    text = lookup_id_or_id.strip()
    try:
        return Q(pk=uuid.UUID(text))
    except ValueError:
        pass
    match = _LOOKUP_ID_RE.fullmatch(text)
    if match is None:
        raise ApiKeyNotFoundError()
    return Q(lookup_id=match.group("lookup_id"))


def api_keys_list(*, principal: Principal) -> list[ApiKey]:
    """Every key, oldest first (for ``manage.py list_api_keys``); no secrets exist to show."""
    with rls.acting_as(principal):
        return list(ApiKey.objects.order_by("created_at", "pk"))


def api_key_parse(raw: str) -> tuple[str, str] | None:
    """``(lookup_id, secret)`` of a well-formed key, else None."""
    match = _KEY_RE.fullmatch(raw)
    if match is None:
        return None
    return match.group("lookup_id"), match.group("secret")


def api_key_authenticate(raw: str) -> ApiKey:
    """The active key ``raw`` is, or :class:`ApiKeyRefusedError` with the reason.

    The secret is checked before revocation and expiry, so only a holder of the real key
    learns (through the audit trail's reason, never the response) that it was revoked.
    """
    if not raw:
        raise ApiKeyRefusedError(ApiKeyRefusalReason.MISSING)
    parsed = api_key_parse(raw)
    if parsed is None:
        raise ApiKeyRefusedError(ApiKeyRefusalReason.MALFORMED)
    lookup_id, _secret = parsed
    # every O2S request runs this: plain SQL skips the ORM's query compilation
    found = row_fetch(ApiKey, _KEY_BY_LOOKUP_ID_SQL, [lookup_id])
    api_key = found[0] if found is not None else None
    expected = api_key.key_hash if api_key is not None else _DUMMY_HASH  # same work either way
    matches = hmac.compare_digest(expected, api_key_hash(raw))
    if api_key is None or not matches:
        raise ApiKeyRefusedError(ApiKeyRefusalReason.UNKNOWN, lookup_id=lookup_id)
    if api_key.revoked_at is not None:
        raise ApiKeyRefusedError(ApiKeyRefusalReason.REVOKED, lookup_id=lookup_id)
    if api_key.expires_at is not None and api_key.expires_at <= timezone.now():
        raise ApiKeyRefusedError(ApiKeyRefusalReason.EXPIRED, lookup_id=lookup_id)
    return api_key


def _network_or_none(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return None


def api_key_check_network(api_key: ApiKey, ip: str) -> bool:
    """Whether ``ip`` lies in one of the key's allowed networks. An invalid ``ip`` never does."""
    address = parse_ip(ip) if ip else None
    if address is None:
        return False
    for cidr in api_key.allowed_networks or []:
        network = _network_or_none(str(cidr))
        if network is None:
            logger.error(
                "API key with lookup id %s has an invalid allowed network %r; ignored", api_key.lookup_id, cidr
            )
            continue
        if network.version == address.version and address in network:
            return True
    return False


@dataclass(frozen=True)
class O2SInvoiceContext:
    """What pricing an O2S invoice reads, read in one round trip: the customer, the
    catalogue entries its lines name (in the invoice currency) and the GST rate in force
    today (``invoices.tax.KnownRate``)."""

    customer: Customer
    catalogue: Mapping[str, CatalogueEntry]
    known_rate: tax.KnownRate


def o2s_invoice_context(
    *,
    principal: ApiKeyPrincipal,
    customer_id: uuid.UUID | None,
    customer_external_id: str | None,
    currency: str,
    product_codes: Collection[str],
) -> O2SInvoiceContext:
    """The customer O2S names (by our id or its external id; 422 ``unknown_customer`` if
    the key cannot see it) with the catalogue entries and the GST rate: one statement
    instead of four, written in SQL because it runs on every invoice O2S creates (the
    ORM spent longer building it than PostgreSQL spent running it). An API key acts with
    system scope, so the ORM scope is every customer (``customers_for_principal``) and the
    statement needs no filter of its own; row-level security applies as to any read."""
    if customer_id is not None:
        column, value, field = "id", str(customer_id), "customer"
    elif customer_external_id is not None:
        column, value, field = "external_id", customer_external_id, "customer_external_id"
    else:
        raise UnknownCustomerError(field="customer")
    on = seller_today()
    rate_sql, rate_params = tax.rate_in_force_sql(code=TaxCode.GST, country=settings.SELLER_COUNTRY, on=on)
    catalogue_sql, catalogue_params = catalogue_entries_sql(codes=product_codes, currency=currency)
    found = row_fetch(
        Customer,
        f"SELECT c.*, ({rate_sql}) AS o2s_gst_rate, ({catalogue_sql}) AS o2s_catalogue "  # noqa: S608 - constant SQL
        f"FROM {Customer._meta.db_table} c WHERE c.{column} = %s",
        [*rate_params, *catalogue_params, value],
    )
    if found is None:
        raise UnknownCustomerError(field=field)
    customer, extra = found
    return O2SInvoiceContext(
        customer=customer,
        catalogue=catalogue_entries_parse(extra["o2s_catalogue"]),
        known_rate=tax.KnownRate(code=TaxCode.GST, country=settings.SELLER_COUNTRY, on=on, rate=extra["o2s_gst_rate"]),
    )


def o2s_invoices_list(
    *,
    principal: ApiKeyPrincipal,
    customer_id: uuid.UUID | None = None,
    customer_external_id: str | None = None,
    status: InvoiceStatus | None = None,
) -> QuerySet[Invoice]:
    """Invoices visible to the key, optionally of one customer and/or one status, with
    customer and lines loaded up front (a constant number of queries per page)."""
    queryset = invoices_for_principal(principal=principal).prefetch_related("lines")
    if customer_id is not None:
        queryset = queryset.filter(customer_id=customer_id)
    if customer_external_id is not None:
        queryset = queryset.filter(customer__external_id=customer_external_id)
    if status is not None:
        queryset = queryset.filter(status=status)
    return queryset


def o2s_invoice_get(*, principal: ApiKeyPrincipal, invoice_id: uuid.UUID | str) -> Invoice:
    """One invoice with its customer and lines loaded."""
    try:
        return o2s_invoices_list(principal=principal).get(id=invoice_id)
    except (Invoice.DoesNotExist, ValueError) as exc:
        raise InvoiceNotFoundError() from exc
