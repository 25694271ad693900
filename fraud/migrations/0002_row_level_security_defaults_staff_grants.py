"""Row-level security on the assessments and risk flags (customer tables), the rules'
default configuration (the security model's table, docs/fraud.md), and the staff groups'
rights: the admin group changes rule configuration; billing and admin clear risk flags;
billing and support view everything read-only."""

from typing import Any

from django.db import migrations

from billing.migrations._staff_groups import grant_operation
from paymenter.rls_sql import protect

CUSTOMER_TABLES = ["fraud_assessment", "fraud_customerriskflag"]
POLICIES = [protect(table, "paymenter_rls_customer_visible(customer_id)") for table in CUSTOMER_TABLES]

# Frozen here (not read from fraud.rules): a migration seeds what was the default when it ran.
DEFAULTS: dict[str, dict[str, Any]] = {
    "velocity": {"max_attempts": 3, "window_seconds": 600, "per_customer": True, "per_source_address": True},
    "amount": {
        "review_over": {
            "AUD": "1000.00",
            "CAD": "1000.00",
            "EUR": "1000.00",
            "GBP": "1000.00",
            "JPY": "100000",
            "NZD": "1000.00",
            "SGD": "1000.00",
            "USD": "1000.00",
        }
    },
    "geography": {"blocked_countries": ["IR", "KP", "SY"], "decision": "block"},
    "three_d_secure": {
        "decision_without_authentication": "review",
        "authenticated_results": ["attempt_acknowledged", "authenticated"],
    },
    "card_checks": {"cvc_fail": "block", "address_fail": "review", "unavailable": "allow"},
    "customer_risk": {"decision": "review"},
}

VIEW = [("fraud", "view_ruleconfig"), ("fraud", "view_assessment"), ("fraud", "view_customerriskflag")]
GRANTS = {
    "admin": [*VIEW, ("fraud", "change_ruleconfig"), ("fraud", "change_customerriskflag")],
    "billing": [*VIEW, ("fraud", "change_customerriskflag")],
    "support": VIEW,
}


def seed(apps: Any, schema_editor: Any) -> None:
    RuleConfig = apps.get_model("fraud", "RuleConfig")
    for name, config in DEFAULTS.items():
        RuleConfig.objects.using(schema_editor.connection.alias).get_or_create(
            name=name, defaults={"enabled": True, "config": config, "updated_by": "migration"}
        )


def unseed(apps: Any, schema_editor: Any) -> None:
    apps.get_model("fraud", "RuleConfig").objects.using(schema_editor.connection.alias).filter(
        name__in=list(DEFAULTS)
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("fraud", "0001_rules_assessments_risk_flags"),
        ("billing", "0006_staff_groups_products"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        *(migrations.RunSQL(forward, backward) for forward, backward in POLICIES),
        migrations.RunPython(seed, unseed),
        grant_operation(GRANTS),
    ]
