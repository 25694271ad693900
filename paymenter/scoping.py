"""ORM half of customer isolation: customer-data managers refuse to run unscoped.

PostgreSQL row-level security is the backstop; this makes a missing principal a loud
error in Python instead of an empty result, and selectors add the explicit
``customer_id`` filter for customer principals on top.
"""

from __future__ import annotations

from typing import TypeVar

from django.db import models

from paymenter import rls

_M = TypeVar("_M", bound=models.Model)


class PrincipalScopedManager(models.Manager[_M]):
    def get_queryset(self) -> models.QuerySet[_M]:
        rls.require_principal()
        return super().get_queryset()
