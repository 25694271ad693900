"""PayPal's webhook signing certificates: which URLs may name one, fetching, checking, caching.

A delivery names its signing certificate by URL (``PAYPAL-CERT-URL``). Anyone can put any
URL there, so the URL is the first thing checked, before any connection: only ``https`` on
``paypal.com`` or a ``*.paypal.com`` host, default port, no user info, a plain path
(:func:`certificate_url_check`). Anything else is refused and never contacted - no request
to an attacker's host, no probing of our own network through us.

A certificate is fetched (no redirects, ``PAYPAL_TIMEOUT_SECONDS``, at most
:data:`MAX_PEM_BYTES`) only when the cache has none for its URL. The cache is the
``PaypalCertificate`` table (PEM by URL; ``source`` ``fetched`` or ``seeded`` by
``manage.py paypal_certificate_seed``, for air-gapped installs, pinning and tests), plus
the parsed form in process memory (keyed by the PEM text, so a re-seeded certificate is
parsed anew). Every use checks, at that moment:

* the chain, from the leaf through the intermediates served with it (or seeded with it) to
  the trust anchors (``PAYPAL_WEBHOOK_CA_FILE``, else certifi's public roots), with
  ``cryptography``'s X.509 path validation; the intermediates must meet the Web PKI's CA
  profile, the leaf is not held to a TLS profile (it signs messages, not a TLS server);
* the validity period of every certificate in it;
* a leaf named for PayPal: a ``paypal.com`` DNS name in its SAN, or, without one, as its
  subject CN (``messageverificationcerts.paypal.com``);
* an RSA public key (``SHA256withRSA`` is the only algorithm we accept).

A certificate that cannot be fetched for network reasons is
:class:`~gateways.base.GatewayUnavailableError` (the view answers 503 and PayPal retries);
one that fails a check is refused (``webhook_certificate_invalid``).
"""

from __future__ import annotations

import functools
import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import certifi
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import ExtensionPolicy, PolicyBuilder, Store, VerificationError
from django.conf import settings
from django.db import transaction

from audit.actions import AuditAction
from audit.services import audit_record
from gateways.base import GatewayUnavailableError, WebhookRejectedError, WebhookRejectedReason
from gateways.models import PaypalCertificate
from paymenter import rls
from paymenter.principals import SystemPrincipal

logger = logging.getLogger(__name__)

CERTIFICATE_PRINCIPAL = SystemPrincipal(label="paypal:certificates")
MAX_PEM_BYTES = 65_536
MAX_URL_LENGTH = 500  # PaypalCertificate.url

# https, a paypal.com host (labels of letters, digits and inner hyphens), port 443 at most
# spelled out, a plain path: no user info, query, fragment, backslash, percent or space.
_CERT_URL = re.compile(
    r"https://(?P<host>(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*paypal\.com)(?::443)?"
    # PayPal's certificates live under one path; nothing else on paypal.com is fetched
    # (an attacker naming other paypal.com pages would otherwise choose what we download)
    r"(?P<path>/v1/notifications/certs/[A-Za-z0-9._~-]+)",
    re.IGNORECASE,
)


class CertificateSource:
    FETCHED = "fetched"
    SEEDED = "seeded"


@dataclass(frozen=True)
class SigningCertificate:
    """A checked certificate: its leaf's RSA key verifies PayPal's signatures."""

    url: str
    leaf: x509.Certificate
    public_key: RSAPublicKey
    not_after: datetime


def _refused(message: str) -> WebhookRejectedError:
    return WebhookRejectedError(WebhookRejectedReason.CERTIFICATE_URL_REFUSED, message)


def _invalid(message: str) -> WebhookRejectedError:
    return WebhookRejectedError(WebhookRejectedReason.CERTIFICATE_INVALID, message)


def certificate_url_check(url: str) -> str:
    """``url`` when it may name a PayPal signing certificate, else the refusal. No I/O."""
    if not url or len(url) > MAX_URL_LENGTH or not _CERT_URL.fullmatch(url):
        raise _refused("The certificate URL is not https on a paypal.com host; it was not contacted.")
    return url


def _is_paypal_name(name: str) -> bool:
    name = name.lower().rstrip(".")
    return name == "paypal.com" or name.endswith(".paypal.com")


def _leaf_names(leaf: x509.Certificate) -> list[str]:
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [str(attr.value) for attr in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return list(san.get_values_for_type(x509.DNSName))


@functools.lru_cache(maxsize=4)
def _trust_store(path: str, _modified: float) -> Store:
    with open(path, "rb") as anchors:
        return Store(x509.load_pem_x509_certificates(anchors.read()))


def _anchors() -> Store:
    path = settings.PAYPAL_WEBHOOK_CA_FILE or certifi.where()
    try:
        modified = os.stat(path).st_mtime
    except OSError as exc:
        raise _invalid(f"The trust anchors ({path}) cannot be read: {exc.strerror}.") from None
    return _trust_store(path, modified)


@functools.lru_cache(maxsize=64)
def _parsed(pem: str) -> tuple[x509.Certificate, ...]:
    """The certificates of a PEM bundle, leaf first (as PayPal serves them)."""
    try:
        return tuple(x509.load_pem_x509_certificates(pem.encode("ascii")))
    except (ValueError, UnicodeEncodeError):
        return ()


def certificate_check(*, url: str, pem: str, now: datetime) -> SigningCertificate:
    """The checked signing certificate in ``pem`` (leaf, then intermediates), or the refusal."""
    chain = _parsed(pem)
    if not chain:
        raise _invalid("The signing certificate is not a PEM certificate.")
    leaf, intermediates = chain[0], list(chain[1:])
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        raise _invalid("The signing certificate is outside its validity period.")
    verifier = (
        PolicyBuilder()
        .store(_anchors())
        .time(now)
        .max_chain_depth(4)
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ExtensionPolicy.permit_all())
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, intermediates)
    except VerificationError as exc:
        raise _invalid(f"The signing certificate does not chain to a trusted authority: {exc}") from None
    names = _leaf_names(leaf)
    if not names or not all(_is_paypal_name(name) for name in names):
        raise _invalid("The signing certificate is not issued to a paypal.com name.")
    key = leaf.public_key()
    if not isinstance(key, RSAPublicKey):
        raise _invalid("The signing certificate's key is not RSA.")
    return SigningCertificate(url=url, leaf=leaf, public_key=key, not_after=leaf.not_valid_after_utc)


def _stored_pem(url: str) -> str | None:
    with rls.acting_as(CERTIFICATE_PRINCIPAL):
        return PaypalCertificate.objects.filter(url=url).values_list("pem", flat=True).first()


def _store(*, checked: SigningCertificate, pem: str, source: str) -> None:
    """Store a checked certificate; a seeded one (a trust decision made by a person) is
    audited in the same transaction, with its fingerprint."""
    with rls.acting_as(CERTIFICATE_PRINCIPAL), transaction.atomic():
        PaypalCertificate.objects.update_or_create(
            url=checked.url, defaults={"pem": pem, "not_after": checked.not_after, "source": source}
        )
        if source == CertificateSource.SEEDED:
            audit_record(
                action=AuditAction.PAYPAL_CERTIFICATE_SEEDED,
                principal=CERTIFICATE_PRINCIPAL,
                object_type="paypal_certificate",
                object_id=checked.url[:200],
                payload={
                    "url": checked.url,
                    "subject": checked.leaf.subject.rfc4514_string(),
                    "sha256": checked.leaf.fingerprint(hashes.SHA256()).hex(),
                    "not_after": checked.not_after.isoformat(),
                },
            )


def _fetch(url: str) -> str:
    """The PEM at ``url`` (already checked): no redirects, bounded in time and size."""
    try:
        with requests.get(
            url, timeout=float(settings.PAYPAL_TIMEOUT_SECONDS), allow_redirects=False, stream=True
        ) as response:
            if response.status_code >= 500 or response.status_code == 429:
                raise GatewayUnavailableError(f"paypal certificate: http {response.status_code}")
            if response.status_code != 200:
                raise _invalid(f"The signing certificate could not be fetched (http {response.status_code}).")
            body = response.raw.read(MAX_PEM_BYTES + 1, decode_content=True)
    except requests.RequestException as exc:
        logger.warning("paypal certificate %s: unreachable (%s)", url, type(exc).__name__)
        raise GatewayUnavailableError(f"paypal certificate: {type(exc).__name__}") from exc
    if len(body) > MAX_PEM_BYTES:
        raise _invalid("The signing certificate is larger than expected.")
    try:
        return str(body.decode("ascii"))
    except UnicodeDecodeError:
        raise _invalid("The signing certificate is not a PEM certificate.") from None


def signing_certificate_get(*, url: str, now: datetime | None = None) -> SigningCertificate:
    """The checked certificate ``url`` names: from the cache, else fetched (only from an
    https paypal.com URL), checked and cached. Checked again at every use."""
    certificate_url_check(url)
    now = now or datetime.now(tz=UTC)
    pem = _stored_pem(url)
    if pem is not None:
        return certificate_check(url=url, pem=pem, now=now)
    pem = _fetch(url)
    checked = certificate_check(url=url, pem=pem, now=now)
    _store(checked=checked, pem=pem, source=CertificateSource.FETCHED)
    logger.info("paypal signing certificate fetched and cached: %s (valid until %s)", url, checked.not_after)
    return checked


def paypal_certificate_seed(*, url: str, pem: str, now: datetime | None = None) -> SigningCertificate:
    """Store ``pem`` (leaf, then intermediates) as the certificate ``url`` names, replacing
    any, after the same URL rule and checks as a fetched one: it is then never fetched."""
    certificate_url_check(url)
    checked = certificate_check(url=url, pem=pem, now=now or datetime.now(tz=UTC))
    _store(checked=checked, pem=pem, source=CertificateSource.SEEDED)
    logger.info("paypal signing certificate seeded: %s (valid until %s)", url, checked.not_after)
    return checked
