"""Read-only admin inlines: rows staff may see on a parent's page but never add, change
or delete there (their own services write them)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest


class ReadOnlyInlineMixin:
    """Mix into an ``InlineModelAdmin`` (first, so these win) to make it read-only."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
