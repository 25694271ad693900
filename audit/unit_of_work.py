"""The unit of work of an entry-point service: one transaction, one acting principal, and
its audit events appended to the chain together at its end.

It lives in ``audit`` rather than beside ``paymenter.rls`` because the audit batch is what
makes it more than ``acting_as`` + ``transaction.atomic``: the kernel's import direction is
``paymenter`` -> ``audit``, never back (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import transaction

from audit.services import audit_deferred
from paymenter.principals import Principal
from paymenter.rls import acting_as


@contextmanager
def unit_of_work(principal: Principal, *, savepoint: bool = True) -> Iterator[Principal]:
    """An entry-point service's transaction, scoped to ``principal``.

    The principal a service is given is the one PostgreSQL enforces, whatever the
    caller had active. Not ``durable``: an API request wraps the service in the
    transaction that also stores its idempotent response (docs/idempotency.md), so the
    service becomes a savepoint there and both commit or neither does. Its audit events
    are appended to the chain together at its end (``audit.services.audit_deferred``).

    ``savepoint=False`` is for a unit of work that refuses nothing once it is open (it
    validated and read everything first): nested in a caller's transaction it then costs
    no SAVEPOINT / RELEASE round trips, and an error inside it rolls back the caller's
    whole transaction, which is what such an error means anyway.
    """
    with acting_as(principal), transaction.atomic(savepoint=savepoint), audit_deferred():
        yield principal
