"""Outbox rows may name a customer: protect them like every customer-data table.

Rows without a customer are visible to staff/system scope only (the predicate is false
for a NULL customer in customer scope).
"""

from django.db import migrations

FORWARD = """
ALTER TABLE paymenter_outboxmessage ENABLE ROW LEVEL SECURITY;
ALTER TABLE paymenter_outboxmessage FORCE ROW LEVEL SECURITY;
CREATE POLICY customer_isolation ON paymenter_outboxmessage
  USING (paymenter_rls_customer_visible(customer_id))
  WITH CHECK (paymenter_rls_customer_visible(customer_id));
"""

BACKWARD = """
DROP POLICY customer_isolation ON paymenter_outboxmessage;
ALTER TABLE paymenter_outboxmessage NO FORCE ROW LEVEL SECURITY;
ALTER TABLE paymenter_outboxmessage DISABLE ROW LEVEL SECURITY;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("paymenter", "0001_outbox_and_idempotency"),
        ("billing", "0002_row_level_security"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
