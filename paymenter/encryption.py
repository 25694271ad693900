"""Field-level encryption of personal data (AES-256-GCM) and blind indexes.

A stored value looks like ``v1:<key id>:<base64url(nonce || ciphertext || tag)>``:

* the **key id** names the keyring entry (``FIELD_ENCRYPTION_KEYS``) so keys rotate;
* the **nonce** is 96 random bits, new for every write;
* the **associated data** binds the value to ``<table>.<column>:<row pk>`` and its key id,
  so a ciphertext copied into another row or column fails to decrypt.

The AES key is derived from the keyring material with HKDF-SHA256, so material of any
length >= 32 bytes gives a proper 256-bit key. Blind indexes (for exact-match lookups
such as email) are HMAC-SHA256 under a separate key, ``BLIND_INDEX_KEY``.
See docs/encryption.md.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from paymenter import keyring
from paymenter.keyring import Keyring, decode_key_material

FORMAT_VERSION = "v1"
NONCE_BYTES = 12


class DecryptionError(Exception):
    """A stored value does not decrypt: wrong row/column, tampered, or unknown key.

    Its message names the value's place (``<table>.<column>:<pk>``) or key id, never a
    value or key. Functions that hold key material hide their locals from error pages and
    reports (``sensitive_variables``)."""


def field_keyring() -> Keyring:
    return keyring.from_settings("FIELD_ENCRYPTION_KEYS")


@sensitive_variables()
@functools.lru_cache(maxsize=32)
def _aes_key(material: bytes) -> AESGCM:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"paymenter/field-encryption/v1").derive(
        material
    )
    return AESGCM(derived)


def _aad(key_id: str, context: str) -> bytes:
    return f"{FORMAT_VERSION}|{key_id}|{context}".encode()


@sensitive_variables()
def encrypt(plaintext: str, *, context: str, keyring: Keyring | None = None) -> str:
    ring = keyring or field_keyring()
    nonce = os.urandom(NONCE_BYTES)
    sealed = _aes_key(ring.primary).encrypt(nonce, plaintext.encode(), _aad(ring.primary_id, context))
    body = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
    return f"{FORMAT_VERSION}:{ring.primary_id}:{body}"


def key_id_of(token: str) -> str:
    return _split(token)[1]


def _split(token: str) -> tuple[str, str, str]:
    parts = token.split(":", 2)
    if len(parts) != 3 or parts[0] != FORMAT_VERSION:
        raise DecryptionError("not an encrypted value of a known format")
    return parts[0], parts[1], parts[2]


@sensitive_variables()
def decrypt(token: str, *, context: str, keyring: Keyring | None = None) -> str:
    ring = keyring or field_keyring()
    _, key_id, body = _split(token)
    try:
        material = ring.get(key_id)
    except KeyError as exc:
        raise DecryptionError(f"unknown encryption key id {key_id!r}") from exc
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        plaintext = _aes_key(material).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(key_id, context))
    except (InvalidTag, ValueError) as exc:
        raise DecryptionError(f"value does not decrypt for {context}") from exc
    return plaintext.decode()


@sensitive_variables()
def blind_index(value: str, *, purpose: str) -> str:
    """Deterministic keyed hash for exact-match lookups; case-insensitive, trimmed."""
    key = decode_key_material(settings.BLIND_INDEX_KEY, name="BLIND_INDEX_KEY")
    normalized = value.strip().casefold()
    message = f"{purpose}\x00{normalized}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()
