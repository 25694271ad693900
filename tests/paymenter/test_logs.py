"""JSON log lines: shape, request id, and redaction of card numbers and secrets."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path
from django.utils.module_loading import import_string

from paymenter import request_context
from paymenter.logs import JsonFormatter, RedactionFilter, RequestContextFilter

VISA = "4111111111111111"  # Luhn-valid test PAN
LUHN_INVALID_16 = "4111111111111112"


class Capture:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def only(self) -> dict[str, Any]:
        lines = self.lines()
        assert len(lines) == 1, lines
        return lines[0]


@pytest.fixture
def capture() -> Iterator[Capture]:
    """A handler built like settings.LOGGING's console handler, on the root logger."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestContextFilter())
    handler.addFilter(RedactionFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield Capture(stream)
    finally:
        root.removeHandler(handler)


logger = logging.getLogger("tests.paymenter.logs")


def test_settings_logging_uses_these_classes() -> None:
    assert import_string(settings.LOGGING["formatters"]["json"]["()"]) is JsonFormatter
    assert import_string(settings.LOGGING["filters"]["request_context"]["()"]) is RequestContextFilter
    assert import_string(settings.LOGGING["filters"]["redact"]["()"]) is RedactionFilter
    assert settings.LOGGING["handlers"]["console"]["filters"] == ["request_context", "redact"]


def test_line_is_one_json_object_with_the_documented_keys(capture: Capture) -> None:
    # when
    logger.warning("invoice %s issued", "INV-7", extra={"invoice_id": 7})

    # then
    line = capture.only()
    assert set(line) == {"time", "level", "logger", "message", "request_id", "client_ip", "invoice_id"}
    assert line["level"] == "WARNING"
    assert line["logger"] == "tests.paymenter.logs"
    assert line["message"] == "invoice INV-7 issued"
    assert line["request_id"] is None
    assert line["invoice_id"] == 7
    assert line["time"].endswith("+00:00")
    assert "\n" not in capture.stream.getvalue().rstrip("\n")


@pytest.mark.parametrize(
    "pan",
    [VISA, "4111 1111 1111 1111", "4111-1111-1111-1111", "378282246310005", "6011000990139424"],
)
def test_card_number_in_message_is_redacted(capture: Capture, pan: str) -> None:
    logger.warning(f"charge failed for card {pan} today")

    assert capture.only()["message"] == "charge failed for card [REDACTED:PAN] today"
    assert pan not in capture.stream.getvalue()


def test_card_number_in_percent_args_is_redacted(capture: Capture) -> None:
    logger.warning("charge failed for card %s (attempt %d)", "4111 1111 1111 1111", 2)

    assert capture.only()["message"] == "charge failed for card [REDACTED:PAN] (attempt 2)"
    assert "1111 1111" not in capture.stream.getvalue()


def test_luhn_invalid_sixteen_digits_are_kept(capture: Capture) -> None:
    logger.warning("order reference %s", LUHN_INVALID_16)

    assert capture.only()["message"] == f"order reference {LUHN_INVALID_16}"


def test_a_uuid_whose_digits_pass_luhn_is_kept_whole(capture: Capture) -> None:
    """An invoice id in an alert line must stay greppable: a random UUID's digit groups form a
    Luhn-valid run about once in a few thousand, and masking it broke the alert (and its test)."""
    invoice_id = "abcdef12-3456-4789-9012-6abcdef01234"  # 3456-4789-9012-6 passes Luhn
    logger.critical("ALERT invoice %s (%s) near card %s", invoice_id, {"invoice_id": invoice_id}, VISA)

    line = capture.only()
    assert line["message"] == (
        f"ALERT invoice {invoice_id} ({{'invoice_id': '{invoice_id}'}}) near card [REDACTED:PAN]"
    )


def test_a_card_number_glued_to_hex_is_still_masked(capture: Capture) -> None:
    """Only a whole UUID is exempt: a PAN with dashes next to other hex is not an identifier."""
    logger.warning("ref ab-4111-1111-1111-1111-cd and deadbeef-4111-1111-1111-1111")

    assert "1111-1111" not in capture.stream.getvalue()


def test_secrets_in_extra_fields_are_redacted(capture: Capture) -> None:
    # when
    logger.warning(
        "gateway call",
        extra={
            "api_key": "sk_live_abcdefghijklmnop",
            "password": "hunter2hunter2",
            "payload": {"card_number": VISA, "note": f"pan {VISA}", "amount_minor": 1250},
            "attempts": [VISA, "ok"],
        },
    )

    # then
    line = capture.only()
    assert line["api_key"] == "[REDACTED]"
    assert line["password"] == "[REDACTED]"
    assert line["payload"] == {"card_number": "[REDACTED]", "note": "pan [REDACTED:PAN]", "amount_minor": 1250}
    assert line["attempts"] == ["[REDACTED:PAN]", "ok"]
    assert "hunter2" not in capture.stream.getvalue()
    assert "sk_live_abc" not in capture.stream.getvalue()


def test_bearer_token_and_inline_secrets_are_redacted(capture: Capture) -> None:
    logger.warning("upstream said: Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc.def token=zzz123456 done")

    assert capture.only()["message"] == "upstream said: Authorization: Bearer [REDACTED] token=[REDACTED] done"


def test_exception_text_is_redacted(capture: Capture) -> None:
    # when
    try:
        raise ValueError(f"card {VISA} declined")  # noqa: TRY301 - a logged exception is the point
    except ValueError:
        logger.exception("payment failed")

    # then
    line = capture.only()
    assert line["message"] == "payment failed"
    assert "ValueError: card [REDACTED:PAN] declined" in line["exception"]
    assert VISA not in capture.stream.getvalue()


def test_unformattable_args_do_not_raise(capture: Capture) -> None:
    logger.warning("two placeholders %s %s", VISA)  # noqa: PLE1206 - malformed on purpose

    line = capture.only()
    assert line["message"].startswith("two placeholders")
    assert VISA not in capture.stream.getvalue()


def test_non_json_extra_is_rendered_as_redacted_text(capture: Capture) -> None:
    class Opaque:
        def __str__(self) -> str:
            return f"Opaque({VISA})"

    logger.warning("odd extra", extra={"thing": Opaque()})

    assert capture.only()["thing"] == "Opaque([REDACTED:PAN])"


def test_request_context_is_stamped(capture: Capture) -> None:
    with request_context.bound(request_context.RequestContext(request_id="req-abcdef12", client_ip="192.0.2.7")):
        logger.warning("inside a request")

    line = capture.only()
    assert line["request_id"] == "req-abcdef12"
    assert line["client_ip"] == "192.0.2.7"


def _logging_view(request: HttpRequest) -> HttpResponse:
    logger.warning("looked up card %s", request.GET.get("card", ""))
    return HttpResponse("ok")


urlpatterns = [path("api/log-something", _logging_view)]


@pytest.mark.urls("tests.paymenter.test_logs")
def test_request_id_of_a_real_request_is_in_its_log_line(capture: Capture, client: Client) -> None:
    # when
    response = client.get(f"/api/log-something?card={VISA}", headers={"X-Request-ID": "req-0123456789"})

    # then
    assert response.status_code == 200
    line = capture.only()
    assert line["message"] == "looked up card [REDACTED:PAN]"
    assert line["request_id"] == "req-0123456789"
    assert line["client_ip"] == "127.0.0.1"


def test_django_request_log_line_has_client_ip_and_no_request_object(capture: Capture, client: Client) -> None:
    # when: Django logs the 404 on "django.request" after the middleware chain returned
    response = client.get(f"/api/no-such-thing?card={VISA}", headers={"X-Request-ID": "req-0123456789"})

    # then
    assert response.status_code == 404
    line = capture.only()
    assert line["logger"] == "django.request"
    assert line["message"] == "Not Found: /api/no-such-thing"
    assert line["client_ip"] == "127.0.0.1"
    assert line["status_code"] == 404
    assert "request" not in line


def test_django_request_log_line_has_the_request_id(capture: Capture, client: Client) -> None:
    client.get("/api/no-such-thing", headers={"X-Request-ID": "req-0123456789"})

    assert capture.only()["request_id"] == "req-0123456789"


def test_a_pay_link_token_in_a_path_is_redacted(capture: Capture) -> None:
    logging.getLogger("django.request").warning("Not Found: /pay/eyJpIjoiYjY1:1xWzYh:bRcPn1T/start/stripe/")
    assert capture.only()["message"] == "Not Found: /pay/[REDACTED]/start/stripe/"
