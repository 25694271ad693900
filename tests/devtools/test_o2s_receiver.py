"""``devtools.o2s_receiver``: the local O2S stand-in of ``make run`` verifies and logs callbacks.

Signed exactly as the worker signs (``o2s.callback_delivery``); no database involved.
"""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from devtools.o2s_receiver import ReceiverServer, describe, format_amount
from devtools.peer_process import REPO
from o2s.callback_delivery import callback_body_bytes
from o2s.callback_signing import SIGNATURE_HEADER, sign_callback

SECRET = "receiver-test-secret"
OLD_SECRET = "receiver-test-old-secret"
EVENT: dict[str, Any] = {
    "created_at": "2026-11-23T07:12:28.214123Z",
    "data": {
        "amount_due_minor": 0,
        "amount_paid_minor": 4900,
        "amount_refunded_minor": 0,
        "currency": "AUD",
        "customer_external_id": "o2s-cust-8812",
        "customer_id": "0b7c6a52-3f1e-4d8a-9c2b-7e5f4a3d2c1b",
        "invoice_id": "3d9f1c27-6a4b-4e0d-8f2a-1b5c7e9d0a64",
        "invoice_number": "INV-2026-000003",
        "status": "paid",
        "total_minor": 4900,
    },
    "id": "evt_5f0c2d1e9a8b4c7d8e6f1a2b3c4d5e6f",
    "type": "invoice.paid",
}


class Running:
    def __init__(self, server: ReceiverServer, out: io.StringIO) -> None:
        self.url = f"http://127.0.0.1:{server.server_address[1]}/callbacks"
        self.out = out

    def lines(self) -> list[str]:
        return self.out.getvalue().splitlines()


@pytest.fixture
def receiver() -> Iterator[Running]:
    out = io.StringIO()
    server = ReceiverServer("127.0.0.1", 0, [SECRET, OLD_SECRET], out=out)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Running(server, out)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def post(url: str, body: bytes, signature: str | None) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    return requests.post(url, data=body, headers=headers, timeout=10)


def test_a_validly_signed_callback_gets_204_and_one_readable_line(receiver: Running) -> None:
    body = callback_body_bytes(EVENT)

    response = post(receiver.url, body, sign_callback(body, SECRET, int(time.time())))

    assert response.status_code == 204
    assert receiver.lines() == ["[o2s-receiver] invoice.paid INV-2026-000003 paid AUD 49.00 (signature ok)"]


def test_a_callback_signed_with_an_older_secret_still_verifies(receiver: Running) -> None:
    body = callback_body_bytes(EVENT)

    assert post(receiver.url, body, sign_callback(body, OLD_SECRET, int(time.time()))).status_code == 204


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(lambda body: sign_callback(body, "some-other-secret", int(time.time())), id="wrong-secret"),
        pytest.param(lambda body: sign_callback(body + b" ", SECRET, int(time.time())), id="other-body"),
        pytest.param(lambda body: sign_callback(body, SECRET, int(time.time()) - 3600), id="too-old"),
        pytest.param(lambda body: "garbage", id="garbage"),
        pytest.param(lambda body: None, id="missing"),
    ],
)
def test_a_bad_signature_gets_401_and_is_logged_as_refused(receiver: Running, signature: Any) -> None:
    body = callback_body_bytes(EVENT)

    response = post(receiver.url, body, signature(body))

    assert response.status_code == 401
    assert receiver.lines() == [
        "[o2s-receiver] invoice.paid INV-2026-000003 paid AUD 49.00 (BAD SIGNATURE: refused with 401)"
    ]


def test_the_line_shows_refunds_and_amounts_due() -> None:
    refunded = {**EVENT, "type": "invoice.partially_refunded"}
    refunded["data"] = {**EVENT["data"], "amount_refunded_minor": 1250}
    partial = {**EVENT, "type": "payment.recorded"}
    partial["data"] = {**EVENT["data"], "status": "open", "amount_paid_minor": 900, "amount_due_minor": 4000}

    assert describe(callback_body_bytes(refunded), signature_ok=True) == (
        "[o2s-receiver] invoice.partially_refunded INV-2026-000003 paid AUD 49.00 refunded AUD 12.50 (signature ok)"
    )
    assert describe(callback_body_bytes(partial), signature_ok=True) == (
        "[o2s-receiver] payment.recorded INV-2026-000003 open AUD 49.00 due AUD 40.00 (signature ok)"
    )
    assert describe(b"not json", signature_ok=False) == (
        "[o2s-receiver] unreadable body (8 bytes) (BAD SIGNATURE: refused with 401)"
    )
    assert format_amount(1234567, "AUD") == "AUD 12,345.67"
    assert format_amount(500, "JPY") == "JPY 500"


def test_the_command_verifies_with_the_secrets_from_the_environment_and_prints_no_secret() -> None:
    """``python -m devtools.o2s_receiver`` as ``make run`` starts it: secrets from
    ``O2S_CALLBACK_SECRETS`` (not the command line), one line per callback on stdout."""
    env = {"PATH": "/usr/bin:/bin", "O2S_CALLBACK_SECRETS": f"{SECRET},{OLD_SECRET}"}
    command = [sys.executable, "-u", "-m", "devtools.o2s_receiver", "--host", "127.0.0.1", "--port", "0"]
    with subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True) as process:  # noqa: S603
        try:
            assert process.stdout is not None
            first = process.stdout.readline()
            assert first.startswith("[o2s-receiver] listening on http://127.0.0.1:"), first
            url = first.split(" on ", 1)[1].split(" ", 1)[0] + "callbacks"
            body = callback_body_bytes(EVENT)
            good = post(url, body, sign_callback(body, SECRET, int(time.time())))
            bad = post(url, body, sign_callback(body, "not-the-secret", int(time.time())))
            printed = [process.stdout.readline().rstrip("\n") for _ in range(2)]
        finally:
            process.terminate()
            process.wait(timeout=10)

    assert (good.status_code, bad.status_code) == (204, 401)
    assert printed == [
        "[o2s-receiver] invoice.paid INV-2026-000003 paid AUD 49.00 (signature ok)",
        "[o2s-receiver] invoice.paid INV-2026-000003 paid AUD 49.00 (BAD SIGNATURE: refused with 401)",
    ]
    assert not any(secret in "\n".join([first, *printed]) for secret in (SECRET, OLD_SECRET))


def test_the_command_refuses_a_non_loopback_host() -> None:
    command = [sys.executable, "-m", "devtools.o2s_receiver", "--host", "0.0.0.0", "--secrets", SECRET]  # noqa: S104
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=30, check=False)  # noqa: S603

    assert result.returncode == 2
    assert "loopback" in result.stderr
