"""Staff groups from the security model's role table.

* admin   - full billing system access (every permission of our apps and user admin)
* billing - view customers (with personal data) and invoices, record payments, refunds
* support - view customers (personal data masked) and invoices; no payment actions
Re-runnable: permissions are set, not appended.
"""

from django.db import migrations

from billing.migrations._staff_groups import ensure_permissions, permissions

OUR_APPS = ("billing", "invoices", "audit", "auth")

BILLING = [
    ("billing", "view_customer"),
    ("billing", "view_customer_pii"),
    ("invoices", "view_invoice"),
    ("invoices", "view_invoiceline"),
    ("invoices", "view_taxrate"),
    ("invoices", "record_payment"),
    ("invoices", "process_refund"),
    ("audit", "view_auditevent"),
]
SUPPORT = [
    ("billing", "view_customer"),
    ("invoices", "view_invoice"),
    ("invoices", "view_invoiceline"),
]


def create_groups(apps, schema_editor):  # type: ignore[no-untyped-def]
    alias = schema_editor.connection.alias
    ensure_permissions(apps, alias)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    admin_perms = Permission.objects.using(alias).filter(content_type__app_label__in=OUR_APPS)
    for name, group_permissions in (
        ("admin", list(admin_perms)),
        ("billing", permissions(apps, alias, BILLING)),
        ("support", permissions(apps, alias, SUPPORT)),
    ):
        group, _ = Group.objects.using(alias).get_or_create(name=name)
        group.permissions.set(group_permissions)


def remove_groups(apps, schema_editor):  # type: ignore[no-untyped-def]
    Group = apps.get_model("auth", "Group")
    Group.objects.using(schema_editor.connection.alias).filter(name__in=["admin", "billing", "support"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0002_row_level_security"),
        ("invoices", "0003_seed_gst_rate"),
        ("audit", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
