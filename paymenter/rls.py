"""Row-level security scope: which customer rows the current unit of work may touch.

PostgreSQL enforces isolation (see ``docs/row-level-security.md``): every customer-data
table has RLS enabled and forced, and its policy reads the transaction-local settings

* ``paymenter.scope``        - ``customer`` | ``staff`` | ``system`` (unset: no rows)
* ``paymenter.customer_ids`` - comma-separated customer UUIDs for ``customer`` scope
* ``paymenter.user_id``      - the acting Django user, if any
* ``paymenter.api_key_id``   - the O2S API key acting, if any (its idempotency records)

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
from paymenter.principals import ApiKeyPrincipal, CustomerPrincipal, Principal

_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("paymenter_rls_principal", default=None)
# True inside request_scope(): the only place a principal may be set without a ``with`` block
_in_request_scope: contextvars.ContextVar[bool] = contextvars.ContextVar("paymenter_rls_request_scope", default=False)


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
        return dict.fromkeys(_SETTINGS, "")
    customer_ids = ""
    user_id = ""
    api_key_id = ""
    if isinstance(principal, CustomerPrincipal):
        customer_ids = ",".join(sorted(str(cid) for cid in principal.customer_ids))
        user_id = str(principal.user_id)
    elif isinstance(principal, ApiKeyPrincipal):
        api_key_id = str(principal.api_key_id)
    elif hasattr(principal, "user_id"):
        user_id = str(principal.user_id)
    return {
        "paymenter.scope": principal.scope_kind.value,
        "paymenter.customer_ids": customer_ids,
        "paymenter.user_id": user_id,
        "paymenter.api_key_id": api_key_id,
    }


_SETTINGS = ("paymenter.scope", "paymenter.customer_ids", "paymenter.user_id", "paymenter.api_key_id")
_SET_SQL = "SELECT " + ", ".join(f"set_config('{name}', %s, true)" for name in _SETTINGS)


def scope_statement(principal: Principal | None) -> tuple[str, list[str]]:
    """The statement that writes ``principal``'s settings in the current transaction, and
    its parameters: sent alone, or ahead of other statements in one query."""
    values = settings_for(principal)
    return _SET_SQL, [values[name] for name in _SETTINGS]


def apply_to_cursor(cursor: Any, principal: Principal | None, *, begin: bool = False) -> None:
    """Write ``principal``'s settings in the open transaction; with ``begin``, open it in
    the same round trip (``BEGIN;`` ahead of them: one multi-statement query, which needs
    client-side binding)."""
    sql, params = scope_statement(principal)
    cursor.execute(f"BEGIN;{sql}" if begin else sql, params)


def _reapply_in_open_transactions() -> None:
    """A scope switched inside an open transaction takes effect immediately.

    Not in a transaction that is already marked for rollback (a unit of work without a
    savepoint failed inside it): no query can run there any more, its settings die with
    the rollback, and trying would hide the original error behind Django's refusal."""
    for conn in connections.all(initialized_only=True):
        if conn.in_atomic_block and getattr(conn, "applies_rls_scope", False) and not conn.needs_rollback:
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


class ScopeOutsideRequestError(RuntimeError):
    """``request_principal_set`` was called outside ``request_scope``: it would outlive it."""


@contextmanager
def request_scope() -> Iterator[None]:
    """One request's (or task's) lifetime for the acting principal.

    It starts with **no** principal, whatever the thread ran before, and whatever the
    request set inside is gone when it ends, however it ends: entered and left in one
    ``try/finally`` on the same thread (docs/row-level-security.md). The web middleware
    and every Celery task open one.
    """
    before = _current.get()
    token = _current.set(None)
    scope_token = _in_request_scope.set(True)
    try:
        if before is not None:
            _reapply_in_open_transactions()
        yield
    finally:
        inside = _current.get()
        _in_request_scope.reset(scope_token)
        _current.reset(token)
        if inside != before:  # only a transaction still open around the scope needs it
            _reapply_in_open_transactions()


def request_principal_set(principal: Principal) -> None:
    """Act as ``principal`` for the rest of the enclosing :func:`request_scope`.

    For a framework hook that cannot wrap the rest of the request in a ``with`` block
    (DRF authenticates in ``initial``, then calls the handler); the scope still ends with
    the request because ``request_scope`` resets it.
    """
    if not _in_request_scope.get():
        raise ScopeOutsideRequestError("request_principal_set needs an enclosing request_scope")
    if _current.get() != principal:
        _current.set(principal)
        _reapply_in_open_transactions()
