"""``IdempotencyRecord`` moves from the ``paymenter`` app to ``o2s`` in Django's state only:
the table, its rows, constraints and indexes stay as they are."""

import uuid

import django.db.models.deletion
from django.db import migrations, models

import paymenter.encrypted_fields


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("billing", "0004_api_keys_and_product_catalogue"),
        ("paymenter", "0002_outbox_row_level_security"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="IdempotencyRecord",
                    fields=[
                        ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ("key", models.CharField(max_length=255)),
                        ("request_fingerprint", models.CharField(max_length=64)),
                        ("response_status", models.PositiveSmallIntegerField()),
                        (
                            "response_body",
                            paymenter.encrypted_fields.EncryptedJSONField(
                                help_text="May hold personal data: encrypted"
                            ),
                        ),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "api_key",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE, related_name="+", to="billing.apikey"
                            ),
                        ),
                    ],
                    options={
                        "db_table": "paymenter_idempotencyrecord",
                        "indexes": [models.Index(fields=["created_at"], name="idempotency_created")],
                        "constraints": [
                            models.UniqueConstraint(fields=("api_key", "key"), name="idempotency_unique_key")
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
