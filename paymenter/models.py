"""Platform tables: the transactional outbox and stored idempotent API responses."""

from __future__ import annotations

import uuid

from django.db import models

from paymenter.encrypted_fields import EncryptedJSONField
from paymenter.scoping import PrincipalScopedManager


class OutboxStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    DEAD = "dead", "Dead (retries exhausted)"


class OutboxMessage(models.Model):
    """Work for a worker, written in the same transaction as the change that causes it.

    The row is the source of truth: enqueueing a Celery task on commit is only a nudge,
    and a periodic relay re-enqueues due rows the broker lost. ``topic`` selects the
    handler; messages with the same ``ordering_key`` are handled in ``sequence`` order.
    See docs/outbox.md.
    """

    id = models.BigAutoField(primary_key=True)  # insertion order: the per-key delivery order
    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    topic = models.CharField(max_length=64)
    ordering_key = models.CharField(max_length=100, blank=True)
    customer = models.ForeignKey("billing.Customer", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=OutboxStatus.choices, default=OutboxStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    next_attempt_at = models.DateTimeField()
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = PrincipalScopedManager()

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="outbox_due"),
            models.Index(fields=["ordering_key", "id"], name="outbox_ordering"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=OutboxStatus.values), name="outbox_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.topic} {self.event_id} ({self.status})"


class IdempotencyRecord(models.Model):
    """The stored outcome of a POST made with an ``Idempotency-Key``, per API key.

    Written in the same transaction as the business change; replayed for the same key
    and request fingerprint, refused (422) for the same key with another request.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    api_key = models.ForeignKey("billing.ApiKey", on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_fingerprint = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField()
    response_body = EncryptedJSONField(help_text="May hold personal data: encrypted")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["api_key", "key"], name="idempotency_unique_key")]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created")]

    def __str__(self) -> str:
        return f"{self.api_key_id}:{self.key}"
