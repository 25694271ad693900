"""The address a request came from, for IP allowlists (docs/api-keys.md).

Without proxies (``TRUSTED_PROXY_COUNT = 0``, the default) it is ``REMOTE_ADDR``, and
``X-Forwarded-For`` is ignored entirely: anyone can send that header.

Behind ``N`` trusted reverse proxies, each appends the address of its peer to
``X-Forwarded-For``, so the last ``N`` entries were written by our proxies and the client
is ``xff[-N]`` (the entry appended by the outermost proxy). Entries left of it were sent by
the client and are ignored. A request with fewer than ``N`` entries did not pass through
every trusted proxy, so it has no trustworthy address: the answer is ``""`` (and an
allowlist refuses it), never ``REMOTE_ADDR``, which would be one of our own proxies.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest

logger = logging.getLogger(__name__)

UNKNOWN = ""
_LOGGED_VALUE_MAX = 64


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address, IPv4-mapped IPv6 (``::ffff:10.1.2.3``) as IPv4; None if ``text`` is not one."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_ip(request: HttpRequest) -> str:
    """The client's address in canonical form, or ``""`` when it cannot be trusted or parsed.

    ``""`` is a refusal for every allowlist; callers must not substitute another value.
    """
    return client_ip_of(request.META)


def client_ip_of(meta: Mapping[str, Any]) -> str:
    """:func:`client_ip` of a WSGI environ (``request.META``), for code in front of Django."""
    trusted_proxies: int = getattr(settings, "TRUSTED_PROXY_COUNT", 0)
    if trusted_proxies <= 0:
        candidate = str(meta.get("REMOTE_ADDR") or "")
    else:
        # Repeated headers arrive joined with "," (WSGI), so they form one list.
        forwarded = [entry.strip() for entry in str(meta.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
        forwarded = forwarded if forwarded != [""] else []
        if len(forwarded) < trusted_proxies:
            logger.warning(
                "X-Forwarded-For has %d entries, fewer than TRUSTED_PROXY_COUNT=%d: client address unknown",
                len(forwarded),
                trusted_proxies,
            )
            return UNKNOWN
        candidate = forwarded[-trusted_proxies]
    address = parse_ip(candidate)
    if address is None:
        logger.warning("client address %r is not an IP address", candidate[:_LOGGED_VALUE_MAX])
        return UNKNOWN
    return str(address)
