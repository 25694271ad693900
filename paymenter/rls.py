"""Row-level security scope: which customer rows the current unit of work may touch.

PostgreSQL enforces isolation (see ``docs/row-level-security.md``): every customer-data
table has RLS enabled and forced, and its policy reads the transaction-local settings

* ``paymenter.scope``        - ``customer`` | ``staff`` | ``system`` (unset: no rows)
* ``paymenter.customer_ids`` - comma-separated customer UUIDs for ``customer`` scope
* ``paymenter.user_id``      - the acting Django user, if any

The active principal lives in a context variable. Our database backend
(``paymenter.postgres_rls``) writes it with ``set_config(..., true)`` at the start of
every transaction, so the settings die with the transaction and can never leak to the
next request on a pooled connection. Queries outside ``transaction.atomic`` are each run
in a tiny transaction that carries the scope too. With no principal active nothing is
set, and every policy evaluates to false: the database fails closed.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections

from paymenter.errors import PaymenterError
from paymenter.principals import CustomerPrincipal, Principal

_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("paymenter_rls_principal", default=None)


class UnscopedAccessError(PaymenterError):
    """Customer data was queried with no acting principal: a programming error."""

    status_code = 500

    def __init__(self, message: str = "customer data accessed without an acting principal") -> None:
        super().__init__(code="unscoped_access", message=message)


def current_principal() -> Principal | None:
    return _current.get()


def require_principal() -> Principal:
    principal = _current.get()
    if principal is None:
        raise UnscopedAccessError()
    return principal


def settings_for(principal: Principal | None) -> dict[str, str]:
    """The transaction settings that express ``principal`` to the RLS policies."""
    if principal is None:
        return {"paymenter.scope": "", "paymenter.customer_ids": "", "paymenter.user_id": ""}
    customer_ids = ""
    user_id = ""
    if isinstance(principal, CustomerPrincipal):
        customer_ids = ",".join(sorted(str(cid) for cid in principal.customer_ids))
        user_id = str(principal.user_id)
    elif hasattr(principal, "user_id"):
        user_id = str(principal.user_id)
    return {
        "paymenter.scope": principal.scope_kind.value,
        "paymenter.customer_ids": customer_ids,
        "paymenter.user_id": user_id,
    }


_SET_SQL = (
    "SELECT set_config('paymenter.scope', %s, true),"
    " set_config('paymenter.customer_ids', %s, true),"
    " set_config('paymenter.user_id', %s, true)"
)


def apply_to_cursor(cursor: Any, principal: Principal | None) -> None:
    values = settings_for(principal)
    cursor.execute(
        _SET_SQL,
        [values["paymenter.scope"], values["paymenter.customer_ids"], values["paymenter.user_id"]],
    )


def _reapply_in_open_transactions() -> None:
    """A scope switched inside an open transaction takes effect immediately."""
    for conn in connections.all(initialized_only=True):
        if conn.in_atomic_block and getattr(conn, "applies_rls_scope", False):
            with conn.cursor() as cursor:
                apply_to_cursor(cursor, _current.get())


@contextmanager
def acting_as(principal: Principal) -> Iterator[Principal]:
    """Run the block as ``principal``: RLS scope, ORM scope and audit actor."""
    changed = _current.get() != principal  # the same principal again needs no round trip
    token = _current.set(principal)
    try:
        if changed:
            _reapply_in_open_transactions()
        yield principal
    finally:
        _current.reset(token)
        if changed:
            _reapply_in_open_transactions()
