"""Named, rotatable secret keys read from settings.

A keyring variable looks like ``"k2:BASE64,k1:BASE64"``: comma-separated ``id:key``
pairs, key material base64 (standard or url-safe) of at least 32 bytes. The **first**
key is primary (it encrypts/signs new data); the others still verify/decrypt old data,
which is what makes rotation possible without downtime.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from dataclasses import dataclass, field

from django.views.decorators.debug import sensitive_variables

MIN_KEY_BYTES = 32
_KEY_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class KeyringError(ValueError):
    """A keyring setting is malformed; raised at start-up, never at request time."""


class UnknownKeyError(KeyError):
    """Data names a key id the keyring does not hold (rotated out too early?)."""


@sensitive_variables()
def decode_key_material(raw: str, *, name: str) -> bytes:
    padded = raw.strip() + "=" * (-len(raw.strip()) % 4)
    try:
        material = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyringError(f"{name}: key material is not valid base64") from exc
    if len(material) < MIN_KEY_BYTES:
        raise KeyringError(f"{name}: key must be at least {MIN_KEY_BYTES} bytes, got {len(material)}")
    return material


@dataclass(frozen=True)
class Keyring:
    name: str
    keys: tuple[tuple[str, bytes], ...] = field(repr=False)  # never in a repr, log or error page

    def __repr__(self) -> str:
        return f"Keyring({self.name!r}, ids={self.ids()!r})"

    @classmethod
    @sensitive_variables()
    def parse(cls, name: str, spec: str) -> Keyring:
        entries: list[tuple[str, bytes]] = []
        for raw_item in spec.split(","):
            item = raw_item.strip()
            if not item:
                continue
            key_id, sep, material = item.partition(":")
            if not sep or not _KEY_ID_RE.match(key_id):
                raise KeyringError(f"{name}: entries must look like 'keyid:base64key'")
            if any(existing == key_id for existing, _ in entries):
                raise KeyringError(f"{name}: key id {key_id!r} appears twice")
            entries.append((key_id, decode_key_material(material, name=f"{name}[{key_id}]")))
        if not entries:
            raise KeyringError(f"{name}: at least one key is required")
        return cls(name=name, keys=tuple(entries))

    @property
    def primary_id(self) -> str:
        return self.keys[0][0]

    @property
    def primary(self) -> bytes:
        return self.keys[0][1]

    def get(self, key_id: str) -> bytes:
        for existing, material in self.keys:
            if existing == key_id:
                return material
        raise UnknownKeyError(f"{self.name}: no key with id {key_id!r}")

    def ids(self) -> list[str]:
        return [key_id for key_id, _ in self.keys]


@functools.lru_cache(maxsize=16)
def _parse_cached(setting_name: str, spec: str) -> Keyring:
    return Keyring.parse(setting_name, spec)


def from_settings(setting_name: str) -> Keyring:
    """The keyring held by ``settings.<setting_name>`` (cached per value, so tests that
    override the setting get the new keyring)."""
    from django.conf import settings  # noqa: PLC0415 - keep module importable without Django

    return _parse_cached(setting_name, getattr(settings, setting_name))
