"""Loaded with ``-p devtools.pytest_plugin`` before pytest-django configures Django.

It provisions the test database and Redis (embedded servers when ``DATABASE_URL`` /
``REDIS_URL`` are unset) and stops the embedded ones when the session ends.
"""

from __future__ import annotations

import pytest

from devtools.provision import prepare_test_environment, stop_test_environment


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    prepare_test_environment()


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    from django.db import connections  # noqa: PLC0415 - Django is configured only after this plugin loads

    connections.close_all()  # let PostgreSQL stop without waiting for our sessions
    stop_test_environment()
