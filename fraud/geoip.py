"""The request IP's country, from a MaxMind GeoIP2 / GeoLite2 Country database.

Optional: without ``settings.FRAUD_GEOIP_DATABASE`` (or with a file that cannot be read)
the geography rule skips the IP country and its assessment says why. Addresses no
database can place (private, loopback, link-local, reserved) are skipped before the
lookup; an address the database does not know is skipped too, stated the same way.
"""

from __future__ import annotations

import ipaddress
import logging
from functools import lru_cache

import geoip2.database
import geoip2.errors
from django.conf import settings
from maxminddb.errors import InvalidDatabaseError

logger = logging.getLogger(__name__)


@lru_cache(maxsize=2)
def _reader(path: str) -> geoip2.database.Reader:
    """One open reader per database path (the file is memory-mapped; a new path after an
    update opens a new reader)."""
    return geoip2.database.Reader(path)


def country_of(address: str) -> tuple[str, str]:
    """``(country code, "")`` for ``address``, or ``("", why it was skipped)``."""
    path = str(getattr(settings, "FRAUD_GEOIP_DATABASE", "") or "")
    if not address:
        return "", "no source address"
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return "", "not an IP address"
    if not ip.is_global:
        return "", f"{ip} is a private or reserved address"
    if not path:
        return "", "no GeoIP database configured (FRAUD_GEOIP_DATABASE)"
    try:
        reader = _reader(path)
    except (OSError, InvalidDatabaseError, ValueError) as exc:
        logger.error("GeoIP database %s unreadable: %s", path, type(exc).__name__)  # noqa: TRY400
        return "", "the GeoIP database could not be read"
    try:
        response = reader.country(str(ip))
    except geoip2.errors.AddressNotFoundError:
        return "", f"{ip} is not in the GeoIP database"
    except (ValueError, TypeError) as exc:  # the database is not a Country database
        logger.error("GeoIP lookup failed: %s", type(exc).__name__)  # noqa: TRY400
        return "", "the GeoIP database could not answer"
    code = response.country.iso_code or response.registered_country.iso_code or ""
    if not code:
        return "", f"{ip} has no country in the GeoIP database"
    return code.upper(), ""
