"""Test harness: real PostgreSQL (as the restricted app role) and real Redis.

The database is provisioned by ``devtools.pytest_plugin`` before Django starts;
migrations run here as the owner role, the tests themselves as ``paymenter_app``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.core.management import call_command
from django.db import connections

from paymenter import rls
from paymenter.principals import StaffPrincipal, SystemPrincipal
from paymenter.refusal_gate import RefusalGate


@pytest.fixture(scope="session")
def django_db_setup(django_db_blocker: pytest.FixtureRequest) -> None:
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        call_command("migrate", database="owner", verbosity=0, interactive=False)
        connections["owner"].close()


@pytest.fixture
def system_principal() -> Iterator[SystemPrincipal]:
    """Run the test body as the system (management command / worker scope)."""
    principal = SystemPrincipal(label="test")
    with rls.acting_as(principal):
        yield principal


@pytest.fixture
def staff_principal() -> StaffPrincipal:
    return StaffPrincipal(user_id=0, username="test-staff")


@pytest.fixture
def committed_db(django_db_blocker: pytest.FixtureRequest, django_db_setup: None) -> Iterator[None]:
    """Database access without the per-test rollback, for tests with real concurrency.

    Data written under it stays committed (the audit trail is append-only by design), so
    such tests must use their own unique objects and relative assertions.
    """
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        yield
        for conn in connections.all(initialized_only=True):
            conn.close()


@pytest.fixture(autouse=True)
def _clear_cache() -> Iterator[None]:
    yield
    with contextlib.suppress(Exception):  # a test that broke Redis must not fail on teardown
        cache.clear()


@pytest.fixture(autouse=True)
def _payment_risk_allow_all(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests not marked ``fraud_rules`` were written before the fraud rules: they run with
    the assessor that always allows, so a rule never turns their payment into a review.
    ``@pytest.mark.fraud_rules`` keeps the configured assessor (the real rules)."""
    if request.node.get_closest_marker("fraud_rules") is not None:
        yield
        return
    from django.conf import settings  # noqa: PLC0415 - Django is configured by the plugin

    previous = settings.PAYMENT_RISK_ASSESSOR
    settings.PAYMENT_RISK_ASSESSOR = "gateways.risk.ALLOW_ALL"
    try:
        yield
    finally:
        settings.PAYMENT_RISK_ASSESSOR = previous


# Every staff user must have an MFA authenticator before the admin opens (accounts/middleware.py).
# Tests that create staff users and open admin pages get a confirmed TOTP authenticator with
# this secret automatically; ``@pytest.mark.staff_without_mfa`` switches that off.
STAFF_TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def _give_staff_totp(sender: Any, instance: Any, **kwargs: Any) -> None:
    from allauth.mfa.models import Authenticator  # noqa: PLC0415 - apps are loaded by now
    from allauth.mfa.utils import encrypt  # noqa: PLC0415

    if instance.is_staff and not Authenticator.objects.filter(user=instance).exists():
        Authenticator.objects.create(
            user=instance, type=Authenticator.Type.TOTP, data={"secret": encrypt(STAFF_TOTP_SECRET)}
        )


@pytest.fixture(autouse=True)
def _staff_have_mfa(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("staff_without_mfa"):
        yield
        return
    from django.contrib.auth import get_user_model  # noqa: PLC0415
    from django.db.models.signals import post_save  # noqa: PLC0415

    user_model = get_user_model()
    post_save.connect(_give_staff_totp, sender=user_model, dispatch_uid="tests.staff_have_mfa")
    try:
        yield
    finally:
        post_save.disconnect(sender=user_model, dispatch_uid="tests.staff_have_mfa")


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def live_wsgi_app() -> Any:
    """What production serves (``paymenter.wsgi``: the refusal gate in front of Django), plus
    static files (the admin's, Swagger UI's) from the apps' folders as runserver does."""
    django_app = RefusalGate(StaticFilesHandler(WSGIHandler()))

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        result = django_app(environ, start_response)
        try:
            return [b"".join(result)]
        finally:
            close = getattr(result, "close", None)  # Django's response (request_finished); not the gate's 429
            if close is not None:
                close()
            connections.close_all()  # this thread's connections must not outlive the test

    return app


class ConcurrentWSGIServer(ThreadingMixIn, WSGIServer):
    """A thread per request and a deep listen queue: real simultaneous requests."""

    daemon_threads = True
    request_queue_size = 128


@pytest.fixture
def live_url(committed_db: None) -> Iterator[str]:
    """The app in a real WSGI server (127.0.0.1, a free port) in a thread, as the restricted
    database role, on committed data (the app role cannot TRUNCATE, so pytest-django's
    ``live_server`` is not an option). It answers one request at a time."""
    yield from _serve(WSGIServer)


@pytest.fixture
def live_url_concurrent(committed_db: None) -> Iterator[str]:
    """As :func:`live_url`, but each request in its own thread, as gunicorn's workers would."""
    yield from _serve(ConcurrentWSGIServer)


def _serve(server_class: type[WSGIServer]) -> Iterator[str]:
    server: WSGIServer = make_server(
        "127.0.0.1", 0, live_wsgi_app(), server_class=server_class, handler_class=QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
