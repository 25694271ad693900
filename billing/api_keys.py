"""API keys O2S uses for the REST API: creation, revocation, authentication (docs/api-keys.md).

A key reads ``pmk_<lookup_id>_<secret>``: ``lookup_id`` is 12 hex characters (public; it
finds the row and names the key in logs and the audit trail), ``secret`` is 32 random bytes
(256 bits) in lowercase unpadded base32 (52 characters of ``a-z2-7``). Only the SHA-256 hex
digest of the whole key is stored, and it is compared with :func:`hmac.compare_digest`.
The key is returned once, by :func:`api_key_create`, and is never logged or audited.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
import uuid
from datetime import datetime, timedelta
from enum import StrEnum

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import audit_record
from billing.models import ApiKey
from paymenter import rls
from paymenter.client_ip import parse_ip
from paymenter.errors import PaymenterError
from paymenter.principals import Principal

logger = logging.getLogger(__name__)

KEY_PREFIX = "pmk"
LOOKUP_ID_LENGTH = 12  # hex characters (48 bits: a public row id, not a secret)
SECRET_BYTES = 32  # 256 bits of randomness
SECRET_LENGTH = 52  # len(base32(32 bytes)) without padding
_KEY_RE = re.compile(
    rf"^{KEY_PREFIX}_(?P<lookup_id>[0-9a-f]{{{LOOKUP_ID_LENGTH}}})_(?P<secret>[a-z2-7]{{{SECRET_LENGTH}}})$"
)
_LOOKUP_ID_RE = re.compile(rf"^(?:{KEY_PREFIX}_)?(?P<lookup_id>[0-9a-f]{{{LOOKUP_ID_LENGTH}}})…?$")
_NAME_MAX_LENGTH = 100
TOUCH_INTERVAL = timedelta(minutes=1)  # last_used_at is written at most this often per key
_CREATE_ATTEMPTS = 3  # a lookup_id collision (2^-48 per pair) is retried, never surfaced
_DUMMY_HASH = hashlib.sha256(b"pmk-no-such-key").hexdigest()


class ApiKeyErrorCode(StrEnum):
    INVALID_API_KEY = "invalid_api_key"
    API_KEY_NOT_FOUND = "api_key_not_found"
    UNAUTHENTICATED = "unauthenticated"


class ApiKeyRefusalReason(StrEnum):
    """Why a presented key was refused. Goes to the audit trail only, never to the client."""

    MISSING = "missing"
    MALFORMED = "malformed"
    UNKNOWN = "unknown"  # no such lookup id, or the secret does not match it
    REVOKED = "revoked"
    EXPIRED = "expired"


class ApiKeyError(PaymenterError):
    pass


class InvalidApiKeySpecError(ApiKeyError):
    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__(
            code=ApiKeyErrorCode.INVALID_API_KEY, message="The API key settings are invalid.", fields=fields
        )


class ApiKeyNotFoundError(ApiKeyError):
    status_code = 404

    def __init__(self) -> None:
        super().__init__(code=ApiKeyErrorCode.API_KEY_NOT_FOUND, message="No such API key.")


class ApiKeyRefusedError(ApiKeyError):
    """The presented key does not authenticate. The message is the same for every reason.

    ``lookup_id`` is the public part of the key when the key parsed (for the audit trail).
    """

    status_code = 401

    def __init__(self, reason: ApiKeyRefusalReason, *, lookup_id: str = "") -> None:
        super().__init__(code=ApiKeyErrorCode.UNAUTHENTICATED, message="Invalid or missing API key.")
        self.reason = reason
        self.lookup_id = lookup_id


def api_key_hash(raw: str) -> str:
    """SHA-256 hex of the whole key. A plain hash suffices: the key has 256 random bits."""
    return hashlib.sha256(raw.encode("ascii")).hexdigest()


def api_key_display(api_key: ApiKey) -> str:
    """How a key is named to people: its public part only."""
    return f"{KEY_PREFIX}_{api_key.lookup_id}…"


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

    with rls.unit_of_work(principal):
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


def _find_filter(lookup_id_or_id: str) -> Q:
    text = lookup_id_or_id.strip()
    try:
        return Q(pk=uuid.UUID(text))
    except ValueError:
        pass
    match = _LOOKUP_ID_RE.fullmatch(text)
    if match is None:
        raise ApiKeyNotFoundError()
    return Q(lookup_id=match.group("lookup_id"))


def api_key_revoke(*, principal: Principal, lookup_id_or_id: str) -> ApiKey:
    """Revoke a key by id, lookup id or its displayed form (``pmk_<lookup_id>…``).

    Revoking a revoked key changes nothing and records nothing (idempotent).
    """
    query = _find_filter(lookup_id_or_id)
    with rls.unit_of_work(principal):
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
    api_key = ApiKey.objects.filter(lookup_id=lookup_id).first()
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
