"""Row-level security on refunds, disputes and fraud warnings (customer tables) and on the
staff-only tables (bank statements, PayPal certificates, daily summaries: visible in staff
and system scope, never in customer scope), and the staff groups' rights: billing and admin
see them all, import bank statements and resolve their lines; support sees refunds, disputes,
fraud warnings and summaries read-only, and no bank statement (payers' names)."""

from django.db import migrations

from billing.migrations._staff_groups import grant_operation
from paymenter.rls_sql import protect

CUSTOMER_TABLES = ["gateways_refund", "gateways_dispute", "gateways_fraudwarning"]
STAFF_TABLES = [
    "gateways_bankstatementimport",
    "gateways_bankstatementline",
    "gateways_paypalcertificate",
    "gateways_dailysummary",
]

POLICIES = [protect(table, "paymenter_rls_customer_visible(customer_id)") for table in CUSTOMER_TABLES]
# NULL: visible in staff and system scope, never in customer scope (fail closed).
POLICIES += [protect(table, "paymenter_rls_customer_visible(NULL::uuid)") for table in STAFF_TABLES]

VIEW = [
    ("gateways", "view_refund"),
    ("gateways", "view_dispute"),
    ("gateways", "view_fraudwarning"),
    ("gateways", "view_dailysummary"),
]
BANK = [
    ("gateways", "view_bankstatementimport"),
    ("gateways", "add_bankstatementimport"),
    ("gateways", "view_bankstatementline"),
    ("gateways", "change_bankstatementline"),
]
GRANTS = {"admin": [*VIEW, *BANK], "billing": [*VIEW, *BANK], "support": VIEW}


class Migration(migrations.Migration):
    dependencies = [
        ("gateways", "0003_refunds_disputes_bank_statements_summaries"),
        ("billing", "0006_staff_groups_products"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        *(migrations.RunSQL(forward, backward) for forward, backward in POLICIES),
        grant_operation(GRANTS),
    ]
