"""Kernel tables: the transactional outbox (docs/outbox.md)."""

from __future__ import annotations

import uuid

from django.db import models

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
    # The customer the work concerns (row-level security keys on it). A plain id, not a
    # foreign key: the kernel knows no app above it (docs/architecture.md).
    customer_id = models.UUIDField(null=True, blank=True, db_index=True)
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
