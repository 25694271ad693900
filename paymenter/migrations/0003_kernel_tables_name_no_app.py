"""The kernel's tables stop referring to apps above it (docs/architecture.md).

* ``IdempotencyRecord`` leaves this app's state (``o2s`` owns it now; same table).
* ``OutboxMessage.customer`` becomes a plain ``customer_id``: the column, its values, its
  index and the row-level security policy on it stay; only the foreign-key constraint to
  ``billing_customer`` is dropped.
"""

from django.db import migrations, models

DROP_CUSTOMER_FK = """
DO $$
DECLARE fk text;
BEGIN
  FOR fk IN
    SELECT conname FROM pg_constraint
     WHERE conrelid = 'paymenter_outboxmessage'::regclass AND contype = 'f'
  LOOP
    EXECUTE format('ALTER TABLE paymenter_outboxmessage DROP CONSTRAINT %I', fk);
  END LOOP;
END $$;
"""

RESTORE_CUSTOMER_FK = """
ALTER TABLE paymenter_outboxmessage
  ADD CONSTRAINT paymenter_outboxmessage_customer_id_fk_billing_customer_id
  FOREIGN KEY (customer_id) REFERENCES billing_customer (id) DEFERRABLE INITIALLY DEFERRED;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("paymenter", "0002_outbox_row_level_security"),
        ("o2s", "0001_idempotency_record_moved_from_paymenter"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="IdempotencyRecord")],
            database_operations=[],
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(model_name="outboxmessage", name="customer"),
                migrations.AddField(
                    model_name="outboxmessage",
                    name="customer_id",
                    field=models.UUIDField(blank=True, db_index=True, null=True),
                ),
            ],
            database_operations=[migrations.RunSQL(DROP_CUSTOMER_FK, RESTORE_CUSTOMER_FK)],
        ),
    ]
