"""The append-only, hash-chained audit trail (see ``docs/audit-chain.md``).

Invariants, enforced in three layers:

* the application writes rows only through ``audit.services.audit_record`` and never
  updates or deletes them (``save``/``delete`` below refuse);
* PostgreSQL triggers refuse UPDATE, DELETE and TRUNCATE, and the application role holds
  only SELECT and INSERT on ``audit_auditevent`` (migration ``0002``);
* every row carries the previous row's HMAC and its own HMAC, keyed outside the database,
  so whatever slips past the first two layers is *detected* by ``verify_audit_chain``.

``sequence`` is the primary key and is assigned by the service from the chain head, not
by a database sequence: a rolled-back transaction therefore leaves no gap, and the
INSERT needs no ``RETURNING`` (which row-level security would refuse for sessions that
may insert but not read, e.g. a customer or an anonymous request).
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first row, and the chain head's hash before any row exists."""

CHAIN_HEAD_ID = 1


class AuditTrailImmutableError(RuntimeError):
    """Code tried to change or remove an audit row: a programming error, never a user error."""


class AuditEvent(models.Model):
    sequence = models.BigIntegerField(primary_key=True, help_text="1, 2, 3 ... without gaps")
    occurred_at = models.DateTimeField(help_text="UTC, microsecond precision")
    actor_type = models.CharField(max_length=32, help_text="customer_user | staff | system | anonymous")
    actor_id = models.CharField(max_length=255, blank=True)
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=255, blank=True)
    customer_id = models.UUIDField(null=True, blank=True)
    payload = models.JSONField(default=dict, help_text="redacted before/after or event details")
    request_id = models.CharField(max_length=128, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64, help_text="hmac of the previous row (hex)")
    hmac = models.CharField(max_length=64, help_text="HMAC-SHA256 of this row's canonical form (hex)")
    key_id = models.CharField(max_length=32, help_text="id of the AUDIT_HMAC_KEYS key that signed the row")

    class Meta:
        ordering: ClassVar[list[str]] = ["sequence"]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["action", "occurred_at"], name="audit_event_action_idx"),
            models.Index(fields=["object_type", "object_id"], name="audit_event_object_idx"),
            models.Index(fields=["customer_id", "occurred_at"], name="audit_event_customer_idx"),
            models.Index(fields=["actor_type", "actor_id"], name="audit_event_actor_idx"),
        ]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.CheckConstraint(condition=models.Q(sequence__gte=1), name="audit_event_sequence_positive"),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} {self.object_type}:{self.object_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AuditTrailImmutableError("audit events are append-only; they cannot be updated")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AuditTrailImmutableError("audit events are append-only; they cannot be deleted")


class AuditChainHead(models.Model):
    """The single row that serialises writers: locked ``FOR UPDATE`` by every append.

    It holds no customer data (so no row-level security); it lets verification notice a
    truncated tail, because it still names the last sequence and hash that were written.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=CHAIN_HEAD_ID)
    last_sequence = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default=GENESIS_HASH)

    class Meta:
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.CheckConstraint(condition=models.Q(id=CHAIN_HEAD_ID), name="audit_chainhead_single_row"),
            models.CheckConstraint(condition=models.Q(last_sequence__gte=0), name="audit_chainhead_sequence_gte_0"),
        ]

    def __str__(self) -> str:
        return f"audit chain head at #{self.last_sequence}"

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AuditTrailImmutableError("the audit chain head cannot be deleted")
