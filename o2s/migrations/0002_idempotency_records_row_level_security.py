"""Row-level security on stored idempotent responses: they hold customer data.

An API key sees only the records it made (``paymenter.api_key_id`` is set for an
``ApiKeyPrincipal``); a system principal without a key (the purge task) sees all; staff,
portal users and no scope see none (docs/row-level-security.md).
"""

from django.db import migrations

VISIBLE = """
current_setting('paymenter.scope', true) = 'system'
AND coalesce(
  nullif(current_setting('paymenter.api_key_id', true), '') IS NULL
  OR api_key_id = nullif(current_setting('paymenter.api_key_id', true), '')::uuid,
  false)
"""

FORWARD = f"""
ALTER TABLE paymenter_idempotencyrecord ENABLE ROW LEVEL SECURITY;
ALTER TABLE paymenter_idempotencyrecord FORCE ROW LEVEL SECURITY;
CREATE POLICY api_key_isolation ON paymenter_idempotencyrecord USING ({VISIBLE}) WITH CHECK ({VISIBLE});
"""

BACKWARD = """
DROP POLICY api_key_isolation ON paymenter_idempotencyrecord;
ALTER TABLE paymenter_idempotencyrecord NO FORCE ROW LEVEL SECURITY;
ALTER TABLE paymenter_idempotencyrecord DISABLE ROW LEVEL SECURITY;
"""


class Migration(migrations.Migration):
    dependencies = [("o2s", "0001_idempotency_record_moved_from_paymenter")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
