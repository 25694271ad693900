"""Tables of the O2S integration.

``IdempotencyRecord`` was created by the ``paymenter`` app; it moved here with the
machinery that uses it and keeps its table (``paymenter_idempotencyrecord``). The API keys
themselves stay in ``billing.ApiKey`` where they were created (docs/architecture.md).
"""

from __future__ import annotations

import uuid

from django.db import models

from paymenter.encrypted_fields import EncryptedJSONField


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
        db_table = "paymenter_idempotencyrecord"
        constraints = [models.UniqueConstraint(fields=["api_key", "key"], name="idempotency_unique_key")]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created")]

    def __str__(self) -> str:
        return f"{self.api_key_id}:{self.key}"
