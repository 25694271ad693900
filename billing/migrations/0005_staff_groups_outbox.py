"""Outbox permissions for the staff groups: billing and admin see the outbox and may
redeliver dead callbacks (a billing operations action); support sees nothing of it.
Re-runnable: permissions are added idempotently; reversing removes only these two.
"""

from django.db import migrations

VIEW = ("paymenter", "view_outboxmessage")
CHANGE = ("paymenter", "change_outboxmessage")
GRANTS = {"admin": [VIEW, CHANGE], "billing": [VIEW, CHANGE]}


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
        ("billing", "0004_api_keys_and_product_catalogue"),
        ("paymenter", "0002_outbox_row_level_security"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
