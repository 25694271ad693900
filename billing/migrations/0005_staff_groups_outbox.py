"""Outbox permissions for the staff groups: billing and admin see the outbox and may
redeliver dead callbacks (a billing operations action); support sees nothing of it.
Re-runnable: permissions are added idempotently; reversing removes only these two.
"""

from django.db import migrations

from billing.migrations._staff_groups import grant_operation

VIEW = ("paymenter", "view_outboxmessage")
CHANGE = ("paymenter", "change_outboxmessage")
GRANTS = {"admin": [VIEW, CHANGE], "billing": [VIEW, CHANGE]}


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0004_api_keys_and_product_catalogue"),
        ("paymenter", "0002_outbox_row_level_security"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [grant_operation(GRANTS)]
