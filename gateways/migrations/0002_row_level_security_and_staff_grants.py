"""Row-level security on the ledger (like every customer table) and on the inbox (staff and
system scope only: it names no customer), and the staff groups' rights: billing and admin
see the ledger and the inbox, resolve held payments and re-process failed events; support
sees them read-only. Nobody may add, change or delete ledger rows in the admin."""

from django.db import migrations

from billing.migrations._staff_groups import grant_operation
from paymenter.rls_sql import protect

CUSTOMER_TABLES = ["gateways_gatewaycustomer", "gateways_paymentattempt", "gateways_payment"]

POLICIES = [protect(table, "paymenter_rls_customer_visible(customer_id)") for table in CUSTOMER_TABLES]
# NULL: visible in staff and system scope, never in customer scope (fail closed).
POLICIES.append(protect("gateways_webhookevent", "paymenter_rls_customer_visible(NULL::uuid)"))

VIEW = [
    ("gateways", "view_payment"),
    ("gateways", "view_paymentattempt"),
    ("gateways", "view_webhookevent"),
    ("gateways", "view_gatewaycustomer"),
]
ACT = [("gateways", "resolve_held_payment"), ("gateways", "reprocess_webhookevent")]
GRANTS = {"admin": [*VIEW, *ACT], "billing": [*VIEW, *ACT], "support": VIEW}


class Migration(migrations.Migration):
    dependencies = [
        ("gateways", "0001_payments_ledger_and_webhook_inbox"),
        ("billing", "0006_staff_groups_products"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        *(migrations.RunSQL(forward, backward) for forward, backward in POLICIES),
        grant_operation(GRANTS),
    ]
