"""The Celery application (configuration from Django settings, ``CELERY_*``) and the
options every task of the project is declared with."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, ParamSpec

from celery import Celery, Task, shared_task
from django.db import InterfaceError, OperationalError

from paymenter import rls

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paymenter.settings")

app = Celery("paymenter")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# transient infrastructure failures worth a quick Celery-level retry
TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)

_P = ParamSpec("_P")


def platform_task(**options: Any) -> Callable[[Callable[_P, None]], Task[_P, None]]:
    """``shared_task`` with what every task needs (STYLE.md): acknowledged after the
    work, re-queued if the worker dies, no result stored, bounded jittered retries on
    transient database errors only. Tasks stay thin: load by id, call one service."""
    task: Callable[[Callable[_P, None]], Task[_P, None]] = shared_task(
        acks_late=True,
        reject_on_worker_lost=True,
        ignore_result=True,
        autoretry_for=TRANSIENT_DB_ERRORS,
        retry_jitter=True,
        **options,
    )

    def decorator(function: Callable[_P, None]) -> Task[_P, None]:
        @functools.wraps(function)
        def scoped(*args: _P.args, **kwargs: _P.kwargs) -> None:
            # a task starts with no acting principal and leaves none behind in the worker
            with rls.request_scope():
                function(*args, **kwargs)

        return task(scoped)

    return decorator
