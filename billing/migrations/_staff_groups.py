"""Shared by the staff-group data migrations (the loader skips modules named ``_*``).

Migration code only: it uses the historical ``apps`` registry, never app code.
"""

from typing import Any

from django.db import migrations

Grants = dict[str, list[tuple[str, str]]]  # group name -> [(app label, codename)]


def ensure_permissions(apps: Any, alias: str) -> None:
    """Create the permissions of every model now, not after ``migrate`` (post_migrate)."""
    from django.contrib.auth.management import create_permissions  # noqa: PLC0415

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0, using=alias)
        app_config.models_module = None


def permissions(apps: Any, alias: str, pairs: list[tuple[str, str]]) -> list[Any]:
    Permission = apps.get_model("auth", "Permission")
    found: list[Any] = []
    for app_label, codename in pairs:
        found.extend(Permission.objects.using(alias).filter(content_type__app_label=app_label, codename=codename))
    return found


def grant_operation(grants: Grants) -> migrations.RunPython:
    """Add ``grants`` to the groups (re-runnable); reversing removes exactly these."""

    def grant(apps: Any, schema_editor: Any) -> None:
        alias = schema_editor.connection.alias
        ensure_permissions(apps, alias)
        Group = apps.get_model("auth", "Group")
        for name, pairs in grants.items():
            group, _ = Group.objects.using(alias).get_or_create(name=name)
            group.permissions.add(*permissions(apps, alias, pairs))

    def revoke(apps: Any, schema_editor: Any) -> None:
        alias = schema_editor.connection.alias
        Group = apps.get_model("auth", "Group")
        for name, pairs in grants.items():
            for group in Group.objects.using(alias).filter(name=name):
                group.permissions.remove(*permissions(apps, alias, pairs))

    return migrations.RunPython(grant, revoke)
