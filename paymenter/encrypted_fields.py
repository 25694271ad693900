"""Model fields whose values are stored encrypted (see ``paymenter.encryption``).

Reading the attribute decrypts (lazily, once per loaded value); assigning stores plain
text that is encrypted on save with the primary key. Because the associated data names
the row's primary key, models using these fields must have a primary key assigned in
Python before saving (our customer-data models use UUID primary keys with a default).
Encrypted columns cannot be filtered on: use a blind index column instead.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.db import models
from django.db.models.query_utils import DeferredAttribute

from paymenter import encryption, rls
from paymenter.errors import PaymenterError
from paymenter.metrics import Metric, metric_increment
from paymenter.principals import Principal

logger = logging.getLogger(__name__)


class EncryptedValueUnreadableError(PaymenterError, encryption.DecryptionError):
    """409 ``encrypted_value_unreadable``: a stored value of the record does not decrypt.

    A ciphertext copied from another row or column (the associated data binds it to its
    place), a tampered one, or one under a key no longer in the keyring: the record cannot
    be used until an operator looks. Detected on read; the alert is raised here (log at
    CRITICAL, ``encrypted_values_unreadable_total``), and the audit event is written by
    ``audit.middleware.UnreadableValueMiddleware`` once the request's own transaction is
    gone, so that it survives the refusal.
    """

    status_code = 409

    def __init__(self, *, place: str, reason: str, principal: Principal | None) -> None:
        super().__init__(
            code="encrypted_value_unreadable",
            message="A stored value of this record cannot be read; the record is held for investigation.",
        )
        self.place = place  # <table>.<column>:<pk>: names the value, never shows it
        self.reason = reason  # the DecryptionError's text: a place or a key id, never key material
        self.principal = principal  # who was acting when it was found

    def __str__(self) -> str:  # for logs and tracebacks; the client sees ``message`` only
        return f"{self.message} ({self.reason})"

    @classmethod
    def detected(cls, *, place: str, reason: str) -> EncryptedValueUnreadableError:
        logger.critical(
            "ALERT encrypted value unreadable at %s: %s",
            place,
            reason,
            extra={"alert": "encrypted_value_unreadable", "place": place},
        )
        metric_increment(Metric.ENCRYPTED_VALUES_UNREADABLE)
        return cls(place=place, reason=reason, principal=rls.current_principal())


class Ciphertext(str):
    """A value as stored in the database; ``plaintext`` caches its decryption."""

    __slots__ = ("plaintext", "plaintext_text")
    plaintext: Any
    plaintext_text: str  # the decrypted text, to notice in-place changes of JSON values


class _EncryptedAttribute(DeferredAttribute):
    """A *data* descriptor (it defines ``__set__``), so reads always pass through
    ``__get__`` even though the stored value lives in the instance ``__dict__``."""

    field: EncryptedTextField

    def __set__(self, instance: models.Model, value: Any) -> None:
        instance.__dict__[self.field.attname] = value

    def __get__(self, instance: models.Model | None, cls: type | None = None) -> Any:
        if instance is None:
            return self
        raw = super().__get__(instance, cls)
        if isinstance(raw, Ciphertext):
            if not hasattr(raw, "plaintext"):
                context = self.field.encryption_context(instance)
                try:
                    text = encryption.decrypt(str(raw), context=context)
                except encryption.DecryptionError as exc:
                    raise EncryptedValueUnreadableError.detected(place=context, reason=str(exc)) from None
                raw.plaintext = self.field.decode_plaintext(text)
                raw.plaintext_text = text
            return raw.plaintext
        return raw


class EncryptedTextField(models.TextField):  # type: ignore[type-arg]
    """Text encrypted with AES-256-GCM, bound to table, column and row."""

    descriptor_class = _EncryptedAttribute

    def encryption_context(self, instance: models.Model) -> str:
        if instance.pk is None:
            raise ValueError(f"{self.model.__name__} needs a primary key before encrypting {self.name}")
        return f"{self.model._meta.db_table}.{self.column}:{instance.pk}"

    def encode_plaintext(self, value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError(f"{self.name} takes a string")
        return value

    def decode_plaintext(self, text: str) -> Any:
        return text

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Ciphertext | None:
        return None if value is None else Ciphertext(value)

    def to_python(self, value: Any) -> Any:
        return value

    def pre_save(self, model_instance: models.Model, add: bool) -> str | None:
        current = model_instance.__dict__.get(self.attname)
        if current is None:
            return None
        if isinstance(current, Ciphertext):
            if not hasattr(current, "plaintext"):
                return str(current)  # never read, so never changed
            if self.encode_plaintext(current.plaintext) == current.plaintext_text:
                return str(current)
            current = current.plaintext  # a JSON value changed in place: encrypt it anew
        text = self.encode_plaintext(current)
        token = encryption.encrypt(text, context=self.encryption_context(model_instance))
        stored = Ciphertext(token)
        stored.plaintext = current
        stored.plaintext_text = text
        model_instance.__dict__[self.attname] = stored
        return token

    def get_prep_value(self, value: Any) -> Any:
        if value is None or isinstance(value, Ciphertext):
            return value
        if isinstance(value, str) and value.startswith(f"{encryption.FORMAT_VERSION}:"):
            return value
        raise TypeError(f"{self.name} is encrypted: it cannot be filtered on or saved outside Model.save()")

    def value_to_string(self, obj: models.Model) -> str:
        value = self.value_from_object(obj)
        return "" if value is None else self.encode_plaintext(value)


class EncryptedJSONField(EncryptedTextField):
    """A JSON document (dict/list of plain values) stored encrypted."""

    def encode_plaintext(self, value: Any) -> str:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    def decode_plaintext(self, text: str) -> Any:
        return json.loads(text)

    def formfield(self, **kwargs: Any) -> Any:
        from django.forms import JSONField  # noqa: PLC0415

        return JSONField(**{"required": not self.blank, **kwargs})
