"""Re-encrypting personal data under the primary field-encryption key (docs/encryption.md).

An operator tool over every app's encrypted columns (found through the app registry), so it
sits in the channel layer; the customer e-mail blind index, which belongs to billing, is
recomputed by ``billing.services.customer_email_index_recompute``.

Rotation is resumable by construction: a row whose every encrypted value already names
the primary key id is never touched again, so an interrupted run (crash, ``--limit``,
Ctrl-C) is finished by running the command again. Each batch is one transaction that
locks its rows (``SELECT ... FOR NO KEY UPDATE``, primary-key order), rewrites only the
encrypted columns (``updated_at``-style columns keep their values) and appends one audit
event naming the model, the row count and the key ids - never a value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db import models, transaction
from django.db.models import Q
from django.db.models.functions import Cast

from audit.actions import AuditAction
from audit.services import audit_record
from paymenter import encryption, rls
from paymenter.encrypted_fields import EncryptedTextField
from paymenter.principals import SystemPrincipal

DEFAULT_BATCH_SIZE = 500
_ALIAS_PREFIX = "_rotation_"


@dataclass(frozen=True)
class EncryptedModel:
    """A concrete model and the encrypted columns it declares itself."""

    model: type[models.Model]
    fields: tuple[str, ...]
    attnames: tuple[str, ...]

    @property
    def label(self) -> str:
        return self.model._meta.label


@dataclass(frozen=True)
class ModelRotation:
    """What one model needed (``dry_run``) or got: rows/values re-encrypted and from which keys."""

    model: str
    fields: tuple[str, ...]
    rows_reencrypted: int
    values_reencrypted: int
    from_key_ids: tuple[str, ...]
    batches: int


@dataclass(frozen=True)
class RotationReport:
    to_key_id: str
    dry_run: bool
    models: tuple[ModelRotation, ...]
    limit_reached: bool

    @property
    def rows_reencrypted(self) -> int:
        return sum(item.rows_reencrypted for item in self.models)

    @property
    def values_reencrypted(self) -> int:
        return sum(item.values_reencrypted for item in self.models)


def encrypted_models() -> list[EncryptedModel]:
    """Every concrete model with encrypted columns of its own, in a stable order.

    Proxy models share their concrete model's table; with multi-table inheritance each
    table is handled by the model that declares its columns (``local_concrete_fields``).
    """
    found: list[EncryptedModel] = []
    for model in apps.get_models():
        meta = model._meta
        if meta.proxy or meta.abstract or not meta.managed:
            continue
        encrypted = [f for f in meta.local_concrete_fields if isinstance(f, EncryptedTextField)]
        if encrypted:
            found.append(
                EncryptedModel(
                    model=model,
                    fields=tuple(f.name for f in encrypted),
                    attnames=tuple(f.attname for f in encrypted),
                )
            )
    return sorted(found, key=lambda item: item.label)


def _stale_filter(fields: tuple[str, ...], primary_id: str) -> tuple[dict[str, Any], Q]:
    """Aliases and a condition selecting rows with a value not under ``primary_id``.

    Encrypted fields refuse lookups (so nobody filters on plaintext by mistake); the
    ciphertext prefix is compared through a text cast instead, so finished rows are
    skipped by the database rather than locked and re-read.
    """
    prefix = f"{encryption.FORMAT_VERSION}:{primary_id}:"
    aliases: dict[str, Any] = {}
    condition = Q()
    for name in fields:
        alias = f"{_ALIAS_PREFIX}{name}"
        aliases[alias] = Cast(name, output_field=models.TextField())
        condition |= Q(**{f"{alias}__isnull": False}) & ~Q(**{f"{alias}__startswith": prefix})
    return aliases, condition


def _stale_queryset(item: EncryptedModel, primary_id: str) -> models.QuerySet[Any]:
    aliases, condition = _stale_filter(item.fields, primary_id)
    queryset: models.QuerySet[Any] = item.model._default_manager.alias(**aliases).filter(condition)
    return queryset.order_by("pk")


def _stored(instance: models.Model, name: str) -> str | None:
    raw = instance.__dict__.get(name)
    return None if raw is None else str(raw)


def _rotate_batch(
    *, item: EncryptedModel, principal: SystemPrincipal, primary_id: str, after: Any, size: int
) -> tuple[Any, int, int, set[str]] | None:
    """Re-encrypt up to ``size`` stale rows with pk > ``after`` in one transaction.

    Returns (last pk, rows, values, from key ids), or None when nothing is left.
    """
    with transaction.atomic():
        queryset = _stale_queryset(item, primary_id).select_for_update(no_key=True)
        if after is not None:
            queryset = queryset.filter(pk__gt=after)
        rows = list(queryset[:size])
        if not rows:
            return None
        values = 0
        rotated_rows = 0
        from_ids: set[str] = set()
        for row in rows:
            changed: list[str] = []
            for name, attname in zip(item.fields, item.attnames, strict=True):
                token = _stored(row, attname)
                if token is None:
                    continue
                key_id = encryption.key_id_of(token)
                if key_id == primary_id:
                    continue
                # Reading decrypts (under the old key); assigning plain text makes
                # pre_save encrypt again under the primary key, bound to the same row.
                setattr(row, name, getattr(row, name))
                changed.append(name)
                from_ids.add(key_id)
            if changed:
                row.save(update_fields=changed)
                rotated_rows += 1
                values += len(changed)
        if rotated_rows:
            audit_record(
                action=AuditAction.ENCRYPTION_KEY_ROTATED,
                principal=principal,
                object_type="model",
                object_id=item.label,
                payload={
                    "model": item.label,
                    "fields": list(item.fields),
                    "rows_reencrypted": rotated_rows,
                    "values_reencrypted": values,
                    "from_key_ids": sorted(from_ids),
                    "to_key_id": primary_id,
                },
            )
        return rows[-1].pk, rotated_rows, values, from_ids


def _count_stale(item: EncryptedModel, primary_id: str) -> ModelRotation:
    rows = 0
    values = 0
    from_ids: set[str] = set()
    stale = _stale_queryset(item, primary_id).values_list(*item.attnames)
    for record in stale.iterator(chunk_size=DEFAULT_BATCH_SIZE):
        ids = [encryption.key_id_of(str(token)) for token in record if token is not None]
        old = [key_id for key_id in ids if key_id != primary_id]
        if old:
            rows += 1
            values += len(old)
            from_ids.update(old)
    return ModelRotation(
        model=item.label,
        fields=item.fields,
        rows_reencrypted=rows,
        values_reencrypted=values,
        from_key_ids=tuple(sorted(from_ids)),
        batches=0,
    )


def encryption_rotate(
    *,
    principal: SystemPrincipal,
    batch_size: int = DEFAULT_BATCH_SIZE,
    limit: int | None = None,
    dry_run: bool = False,
) -> RotationReport:
    """Re-encrypt every encrypted value not under the primary key of ``FIELD_ENCRYPTION_KEYS``.

    ``limit`` caps the rows re-encrypted by this run (the rest is left for the next run);
    ``dry_run`` only counts. Every old key id in use must still be in the keyring.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if limit is not None and limit < 0:
        raise ValueError("limit must not be negative")
    primary_id = encryption.field_keyring().primary_id
    results: list[ModelRotation] = []
    remaining = limit
    with rls.acting_as(principal):
        for item in encrypted_models():
            if dry_run:
                results.append(_count_stale(item, primary_id))
                continue
            rows = values = batches = 0
            from_ids: set[str] = set()
            after: Any = None
            while remaining is None or remaining > 0:
                size = batch_size if remaining is None else min(batch_size, remaining)
                outcome = _rotate_batch(item=item, principal=principal, primary_id=primary_id, after=after, size=size)
                if outcome is None:
                    break
                after, batch_rows, batch_values, batch_from = outcome
                rows += batch_rows
                values += batch_values
                from_ids |= batch_from
                batches += 1
                if remaining is not None:
                    remaining -= batch_rows
            results.append(
                ModelRotation(
                    model=item.label,
                    fields=item.fields,
                    rows_reencrypted=rows,
                    values_reencrypted=values,
                    from_key_ids=tuple(sorted(from_ids)),
                    batches=batches,
                )
            )
    return RotationReport(
        to_key_id=primary_id,
        dry_run=dry_run,
        models=tuple(results),
        limit_reached=remaining is not None and remaining <= 0 and not dry_run,
    )
