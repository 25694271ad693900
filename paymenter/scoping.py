"""ORM half of customer isolation: customer-data managers refuse to run unscoped.

PostgreSQL row-level security is the backstop; this makes a missing principal a loud
error in Python instead of an empty result, and selectors add the explicit
``customer_id`` filter for customer principals on top.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from paymenter import rls


class PrincipalScopedManager(models.Manager):  # type: ignore[type-arg]
    def get_queryset(self) -> models.QuerySet[Any]:
        rls.require_principal()
        return super().get_queryset()
