"""Migrations run only on the ``owner`` alias; the application role cannot run DDL."""

from __future__ import annotations

from typing import Any


class OwnerMigratesRouter:
    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool:
        return db == "owner"
