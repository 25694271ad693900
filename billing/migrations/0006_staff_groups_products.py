"""Product catalogue permissions for the staff groups: admin adds and changes products
and their prices; billing and support see them. Nobody is granted delete (a retired
product is deactivated). Re-runnable: permissions are added idempotently; reversing
removes only these.
"""

from django.db import migrations

from billing.migrations._staff_groups import grant_operation

VIEW = [("billing", "view_product"), ("billing", "view_productprice")]
CHANGE = [
    ("billing", "add_product"),
    ("billing", "change_product"),
    ("billing", "add_productprice"),
    ("billing", "change_productprice"),
]
GRANTS = {"admin": [*VIEW, *CHANGE], "billing": VIEW, "support": VIEW}


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0005_staff_groups_outbox"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [grant_operation(GRANTS)]
