"""Product catalogue permissions for the staff groups: admin adds and changes products
and their prices; billing and support see them. Nobody is granted delete (a retired
product is deactivated). Re-runnable: permissions are added idempotently; reversing
removes only these.
"""

from django.db import migrations

VIEW = [("billing", "view_product"), ("billing", "view_productprice")]
CHANGE = [
    ("billing", "add_product"),
    ("billing", "change_product"),
    ("billing", "add_productprice"),
    ("billing", "change_productprice"),
]
GRANTS = {"admin": [*VIEW, *CHANGE], "billing": VIEW, "support": VIEW}


def _permissions(apps, alias, pairs):  # type: ignore[no-untyped-def]
    Permission = apps.get_model("auth", "Permission")
    found = []
    for app_label, codename in pairs:
        found.extend(Permission.objects.using(alias).filter(content_type__app_label=app_label, codename=codename))
    return found


def grant(apps, schema_editor):  # type: ignore[no-untyped-def]
    from django.contrib.auth.management import create_permissions  # noqa: PLC0415

    alias = schema_editor.connection.alias
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0, using=alias)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    for name, pairs in GRANTS.items():
        group, _ = Group.objects.using(alias).get_or_create(name=name)
        group.permissions.add(*_permissions(apps, alias, pairs))


def revoke(apps, schema_editor):  # type: ignore[no-untyped-def]
    alias = schema_editor.connection.alias
    Group = apps.get_model("auth", "Group")
    for name, pairs in GRANTS.items():
        for group in Group.objects.using(alias).filter(name=name):
            group.permissions.remove(*_permissions(apps, alias, pairs))


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0005_staff_groups_outbox"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
