"""The canonical form of an audit row and its HMAC: the part of the chain that is pure code.

The canonical form is JSON with sorted keys, no insignificant whitespace and ASCII-only
escapes. The timestamp is rendered in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` whatever the
process or database session time zone, IP addresses in their compressed form, UUIDs in
lower-case hyphenated form. The form covers every column except ``hmac`` itself, so the
sequence, the link to the previous row (``prev_hash``) and the signing key id are signed.

The payload is normalised *before* it is stored (:func:`normalise_payload`) to plain JSON
types without floats, so what PostgreSQL's ``jsonb`` hands back is exactly what was signed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac as hmac_lib
import ipaddress
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CANONICAL_VERSION = 1


@dataclass(frozen=True)
class ChainFields:
    """Everything a row's HMAC covers (all columns except ``hmac``)."""

    sequence: int
    occurred_at: dt.datetime
    actor_type: str
    actor_id: str
    action: str
    object_type: str
    object_id: str
    customer_id: uuid.UUID | None
    payload: Mapping[str, Any]
    request_id: str
    ip: str | None
    prev_hash: str
    key_id: str


def format_timestamp(value: dt.datetime) -> str:
    """UTC ISO-8601 with microseconds and ``Z``; naive datetimes are refused, not guessed."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def normalise_ip(value: str | None) -> str | None:
    """The compressed textual form of an IP address; ``None`` for absent or unparsable input."""
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def normalise_payload(value: Any) -> Any:
    """Plain JSON types that survive a ``jsonb`` round trip unchanged.

    Floats, ``Decimal``, UUIDs and dates become strings (money is integer minor units
    anyway); tuples and sets become lists; mapping keys become strings.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Mapping):
        return {str(key): normalise_payload(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [normalise_payload(item) for item in value]
    if isinstance(value, set | frozenset):
        return sorted((normalise_payload(item) for item in value), key=repr)
    if isinstance(value, dt.datetime):
        return format_timestamp(value) if value.tzinfo is not None else value.isoformat()
    # float, Decimal, UUID, date, time and anything else: their ``str`` form.
    return str(value)


def canonical_bytes(fields: ChainFields) -> bytes:
    document = {
        "v": CANONICAL_VERSION,
        "sequence": fields.sequence,
        "occurred_at": format_timestamp(fields.occurred_at),
        "actor_type": fields.actor_type,
        "actor_id": fields.actor_id,
        "action": fields.action,
        "object_type": fields.object_type,
        "object_id": fields.object_id,
        "customer_id": str(fields.customer_id) if fields.customer_id is not None else None,
        "payload": fields.payload,
        "request_id": fields.request_id,
        "ip": normalise_ip(fields.ip),
        "prev_hash": fields.prev_hash,
        "key_id": fields.key_id,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def compute_hmac(fields: ChainFields, *, key: bytes) -> str:
    """Hex HMAC-SHA256 of the canonical form."""
    return hmac_lib.new(key, canonical_bytes(fields), hashlib.sha256).hexdigest()


def hmac_matches(fields: ChainFields, *, key: bytes, expected: str) -> bool:
    return hmac_lib.compare_digest(compute_hmac(fields, key=key), expected)
