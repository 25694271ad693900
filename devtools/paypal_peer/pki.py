"""A PKI of our own for PayPal's webhook signatures: one root, one intermediate, one leaf.

PayPal signs webhooks with the key of a certificate issued to ``messageverificationcerts.
paypal.com`` by a public CA, and the app checks the chain up to ``PAYPAL_WEBHOOK_CA_FILE``.
The local fake cannot hold PayPal's key, so the tests and ``make run`` make a PKI here and
point the app's trust anchor at its root: the app's checks stay exactly as strict (chain,
validity, a paypal.com name, RSA), only the anchor differs. This module is the one way both
make it: :func:`make_pki` in memory (a test's, valid 2020-2040 so that no test depends on
today's date), :func:`pki_ensure` once into a folder (``make run``'s, kept across runs).

Never trust such a root outside development: whoever reads its folder can sign "PayPal's"
webhooks.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_FROM = datetime(2020, 1, 1, tzinfo=UTC)
VALID_UNTIL = datetime(2040, 1, 1, tzinfo=UTC)
LEAF_NAME = "messageverificationcerts.paypal.com"
TEST_ORGANIZATION = "Paymenter test PKI"
ROOT_FILE = "root.pem"
CHAIN_FILE = "chain.pem"
KEY_FILE = "key.pem"


@dataclasses.dataclass(frozen=True)
class PaypalPKI:
    """A root, an intermediate and a leaf: ``chain_pem`` is what PayPal serves at the cert URL
    (the leaf, then the intermediate), ``root_pem`` the trust anchor, ``key_pem`` the leaf's key."""

    root_pem: str
    chain_pem: str
    key_pem: str
    cert_url: str

    def write_root(self, directory: Path) -> Path:
        path = directory / f"root-{secrets.token_hex(4)}.pem"
        path.write_text(self.root_pem)
        return path

    def write_chain(self, directory: Path) -> Path:
        path = directory / f"chain-{secrets.token_hex(4)}.pem"
        path.write_text(self.chain_pem)
        return path


@dataclasses.dataclass(frozen=True)
class PkiFiles:
    """A PKI saved in ``directory``: the trust anchor (``root``), what is served or seeded for
    the certificate URL (``chain``: the leaf, then the intermediate) and the leaf's key (``key``,
    readable by its owner only)."""

    directory: Path

    @property
    def root(self) -> Path:
        return self.directory / ROOT_FILE

    @property
    def chain(self) -> Path:
        return self.directory / CHAIN_FILE

    @property
    def key(self) -> Path:
        return self.directory / KEY_FILE

    def complete(self) -> bool:
        return all(path.is_file() for path in (self.root, self.chain, self.key))


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _certificate(
    *,
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: tuple[x509.Certificate, rsa.RSAPrivateKey] | None,
    ca: bool,
    valid_from: datetime,
    valid_until: datetime,
    dns_names: tuple[str, ...] = (),
) -> x509.Certificate:
    issuer_name = issuer[0].subject if issuer else subject
    signing_key = issuer[1] if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_until)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=not ca,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
            critical=False,
        )
    )
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    if dns_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in dns_names]), critical=False
        )
    return builder.sign(signing_key, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def make_pki(
    *,
    root_name: str = "Paymenter Test Root CA",
    leaf_name: str = LEAF_NAME,
    leaf_from: datetime = VALID_FROM,
    leaf_until: datetime = VALID_UNTIL,
    cert_url: str | None = None,
    organization: str = TEST_ORGANIZATION,
) -> PaypalPKI:
    """A fresh PKI (RSA 2048). ``leaf_from``/``leaf_until`` make an expired or a not yet valid
    leaf; the leaf names ``leaf_name`` in its subject CN and SAN. ``cert_url`` defaults to a
    new ``https://api.paypal.com/v1/notifications/certs/CERT-...`` (a URL PayPal could name, so
    the app's host rule stays strict)."""
    root_key, intermediate_key, leaf_key = _key(), _key(), _key()
    root = _certificate(
        subject=_name(root_name, organization),
        key=root_key,
        issuer=None,
        ca=True,
        valid_from=VALID_FROM,
        valid_until=VALID_UNTIL,
    )
    intermediate = _certificate(
        subject=_name(f"{root_name} intermediate", organization),
        key=intermediate_key,
        issuer=(root, root_key),
        ca=True,
        valid_from=VALID_FROM,
        valid_until=VALID_UNTIL,
    )
    leaf = _certificate(
        subject=_name(leaf_name, organization),
        key=leaf_key,
        issuer=(intermediate, intermediate_key),
        ca=False,
        valid_from=leaf_from,
        valid_until=leaf_until,
        dns_names=(leaf_name,),
    )
    key_pem = leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    return PaypalPKI(
        root_pem=_pem(root),
        chain_pem=_pem(leaf) + _pem(intermediate),
        key_pem=key_pem,
        cert_url=cert_url or f"https://api.paypal.com/v1/notifications/certs/CERT-{secrets.token_hex(4)}-test",
    )


def _write(path: Path, text: str, mode: int) -> None:
    """Whole or not at all: a reader (or a crash) never sees half a PEM."""
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)  # an earlier crash's, perhaps with other permissions
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "w", encoding="ascii") as out:
        out.write(text)
    os.replace(partial, path)


def pki_ensure(directory: Path, *, root_name: str, organization: str) -> PkiFiles:
    """The PKI saved in ``directory``; made and saved first when a file of it is missing.

    Kept across runs, so a trust anchor or a seeded certificate from an earlier run stays
    valid; a folder with only part of a PKI (an interrupted first run) gets a whole new one,
    since a root, a chain and a key from different PKIs would not verify each other.
    """
    files = PkiFiles(directory)
    if files.complete():
        return files
    directory.mkdir(parents=True, exist_ok=True)
    pki = make_pki(root_name=root_name, organization=organization)
    _write(files.key, pki.key_pem, 0o600)
    _write(files.chain, pki.chain_pem, 0o644)
    _write(files.root, pki.root_pem, 0o644)  # last: complete() holds only once all are there
    return files
