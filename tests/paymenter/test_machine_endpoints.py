"""``paymenter.middleware.MachineEndpointMiddleware``: a webhook or an O2S API call skips
the browser middleware (sessions, CSRF, authentication, messages) but every answer still
carries the security headers, a view's exception still meets the middleware's
``process_exception`` hooks (``tests/encryption/test_unreadable_values.py``), and whatever is
not a machine endpoint (the API's staff docs included) takes the full stack."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.o2s.api_helpers import make_api_client
from tests.paymenter.test_security_headers import assert_security_headers
from tests.stripe_events import WEBHOOK_URL, checkout_session_event, signed, stripe_webhooks_only

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _stripe(settings: Any) -> None:
    stripe_webhooks_only(settings)


def _post(client: Client, path: str, body: str, header: str = "") -> Any:
    extra: dict[str, Any] = {"HTTP_STRIPE_SIGNATURE": header} if header else {}
    return client.post(path, data=body, content_type="application/json", **extra)


@pytest.mark.parametrize("signature", ["valid", "missing"])
def test_a_webhook_answer_carries_the_security_headers(signature: str) -> None:
    body, header = signed(checkout_session_event())
    response = _post(Client(), WEBHOOK_URL, body, header if signature == "valid" else "")

    assert response.status_code == (200 if signature == "valid" else 400)
    assert_security_headers(response)
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert response["Content-Length"] == str(len(response.content))
    assert response["X-Request-ID"]


def test_a_session_cookie_sent_along_is_not_read(django_user_model: type[User]) -> None:
    client = Client()
    client.force_login(django_user_model.objects.create_user(username="someone", password="unused-pw-1"))
    body, header = signed(checkout_session_event())

    response = _post(client, WEBHOOK_URL, body, header)

    assert response.status_code == 200
    assert "Vary" not in response  # the answer depends on no cookie
    assert not response.cookies  # nor renews or sets one
    assert not hasattr(response.wsgi_request, "user")


def test_a_path_that_is_no_webhook_view_takes_the_full_stack() -> None:
    missing_slash = _post(Client(), WEBHOOK_URL.rstrip("/"), "{}")
    unknown = _post(Client(), "/webhooks/nope/", "{}")

    assert (missing_slash.status_code, missing_slash["Location"]) == (301, WEBHOOK_URL)  # CommonMiddleware
    assert unknown.status_code == 404
    assert unknown["X-Frame-Options"] == "DENY"


# --- the O2S API ---------------------------------------------------------------------------


def test_an_o2s_call_carries_the_security_headers_and_ignores_a_session(
    django_user_model: type[User], system_principal: object
) -> None:
    api = make_api_client()
    api.client.force_login(django_user_model.objects.create_user(username="portal", password="unused-pw-1"))

    response = api.get("/api/v1/products/")
    refused = api.client.get("/api/v1/products/", HTTP_AUTHORIZATION="Bearer nope", REMOTE_ADDR="127.0.0.1")

    assert (response.status_code, refused.status_code) == (200, 401)
    for answer in (response, refused):
        assert_security_headers(answer)
        assert answer["Cross-Origin-Opener-Policy"] == "same-origin"
        assert answer["Content-Length"] == str(len(answer.content))
        assert answer["X-Request-ID"]
        assert "Vary" not in answer  # no session was read
        assert not answer.cookies
    assert not hasattr(response.wsgi_request, "session")  # the session middleware never ran


def test_the_api_docs_page_is_no_machine_endpoint() -> None:
    docs = Client().get("/api/v1/docs/")

    assert docs.status_code in (302, 403)  # the full stack: staff sign-in with MFA required
    assert docs["X-Frame-Options"] == "DENY"
