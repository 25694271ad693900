"""The local PayPal fake as a process, for the tests (and by hand: ``python -m devtools.paypal_peer``).

:func:`running_paypal_peer` starts ``devtools.paypal_peer`` on a free loopback port, waits
until it answers, and stops it on exit. :class:`PaypalPeer` speaks its control API (what a
test does "in PayPal's dashboard" or as PayPal itself) and approves orders on its approval
page as a browser would. Both are reached over HTTP only. Starting, waiting for and stopping
the process is :mod:`devtools.peer_process`, shared with the Stripe peer's harness.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import shutil
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests

from devtools.paypal_peer.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from devtools.peer_process import HOST, free_port, start_module, wait_healthy

HTTP_TIMEOUT_SECONDS = 30
_FORM = re.compile(r'<form method="post" action="(?P<action>[^"]+)">(?P<body>.*?)</form>', re.DOTALL)
_HIDDEN = re.compile(r'<input type="hidden" name="(?P<name>[^"]+)" value="(?P<value>[^"]*)">')


@dataclasses.dataclass(frozen=True)
class PaypalPeer:
    """The running fake: ``api_base`` is the app's ``PAYPAL_API_BASE``."""

    api_base: str
    workdir: Path
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    pid: int = 0

    def _control(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = requests.request(method, f"{self.api_base}/_peer/{path}", timeout=HTTP_TIMEOUT_SECONDS, **kwargs)
        resp.raise_for_status()
        return resp.json()

    def reset(self) -> None:
        """Forget everything: orders, captures, tokens, events; the configuration is the one
        it was started with again (the defaults, as the harness starts it)."""
        self._control("POST", "reset")

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change the fake's configuration; keys: ``webhook_url``, ``webhook_id``,
        ``signing_key_pem`` and ``cert_url`` (how deliveries are signed), ``delivery``
        (``deliver``, ``hold``, ``drop``), ``capture_status`` (what the next captures answer:
        ``COMPLETED``, ``PENDING``, ``DECLINED``), ``clock`` (resources' time, ISO 8601;
        ``None``: real time)."""
        answer: dict[str, Any] = self._control("POST", "config", json=changes)
        return answer

    def stats(self) -> dict[str, int]:
        """``token_requests`` (OAuth token requests so far) and ``orders``."""
        answer: dict[str, int] = self._control("GET", "stats")
        return answer

    def token_requests(self) -> int:
        return self.stats()["token_requests"]

    def revoke_tokens(self) -> None:
        """Make every token issued so far invalid (the next API call answers 401)."""
        self._control("POST", "tokens/revoke")

    def events(self) -> list[dict[str, Any]]:
        """Every event emitted so far, in order, as it was (or would be) delivered."""
        events: list[dict[str, Any]] = self._control("GET", "events")
        return events

    def release(self) -> list[dict[str, Any]]:
        """Deliver the held events now, in order, signed afresh; ``[{"id", "status"}]``."""
        answer: list[dict[str, Any]] = self._control("POST", "release")
        return answer

    def replay(self, event_id: str) -> int | None:
        """Deliver an event of the log again (a new transmission, as PayPal's resend); the
        app's HTTP status."""
        answer: list[dict[str, Any]] = self._control("POST", f"events/{event_id}/replay")
        status: int | None = answer[0]["status"]
        return status

    def approve(self, order_id: str) -> dict[str, Any]:
        """The buyer approves the order (server-side: no page); emits CHECKOUT.ORDER.APPROVED."""
        order: dict[str, Any] = self._control("POST", f"orders/{order_id}/approve")
        return order

    def set_capture_status(self, capture_id: str, status: str) -> dict[str, Any]:
        """PayPal moves a capture: ``COMPLETED``, ``PENDING``, ``DECLINED`` (a denied pending
        capture) or ``REVERSED``; emits the matching PAYMENT.CAPTURE.* event."""
        capture: dict[str, Any] = self._control("POST", f"captures/{capture_id}/status", json={"status": status})
        return capture

    def refund_in_dashboard(self, capture_id: str, value: str | None = None) -> dict[str, Any]:
        """A refund made in PayPal's dashboard (no ``custom_id``): the rest, or ``value``."""
        body = {"value": value} if value is not None else {}
        refund: dict[str, Any] = self._control("POST", f"captures/{capture_id}/refund", json=body)
        return refund

    def open_dispute(self, capture_id: str, *, reason: str = "", value: str | None = None) -> dict[str, Any]:
        """The buyer disputes a capture; emits CUSTOMER.DISPUTE.CREATED."""
        body: dict[str, Any] = {"capture_id": capture_id, "reason": reason}
        if value is not None:
            body["value"] = value
        dispute: dict[str, Any] = self._control("POST", "disputes", json=body)
        return dispute

    def resolve_dispute(self, dispute_id: str, outcome: str) -> dict[str, Any]:
        """PayPal decides (``RESOLVED_BUYER_FAVOUR``, ``RESOLVED_SELLER_FAVOUR`` ...); emits
        CUSTOMER.DISPUTE.RESOLVED."""
        dispute: dict[str, Any] = self._control("POST", f"disputes/{dispute_id}/resolve", json={"outcome": outcome})
        return dispute

    def _click(self, approval_url: str, action: str) -> str:
        with requests.Session() as browser:
            page = browser.get(approval_url, timeout=HTTP_TIMEOUT_SECONDS)
            page.raise_for_status()
            forms = [(m["action"], m["body"]) for m in _FORM.finditer(page.text)]
            form = next((found for found in forms if found[0].endswith(action)), None)
            if form is None:
                raise AssertionError(f"no {action} form on {approval_url}: {page.text}")
            fields = {m["name"]: unescape(m["value"]) for m in _HIDDEN.finditer(form[1])}
            resp = browser.post(
                urljoin(approval_url, unescape(form[0])),
                data=fields,
                allow_redirects=False,
                timeout=HTTP_TIMEOUT_SECONDS,
            )
            if resp.status_code != 303:
                raise AssertionError(f"{action}: HTTP {resp.status_code}: {resp.text}")
            return resp.headers["Location"]

    def approve_in_browser(self, approval_url: str) -> str:
        """Open the approval page and press Approve; the redirect's ``Location`` (the app's
        return URL with ``token`` and ``PayerID``), not followed."""
        return self._click(approval_url, "/approve")

    def cancel_in_browser(self, approval_url: str) -> str:
        """Open the approval page and press Cancel; the redirect's ``Location`` (cancel URL)."""
        return self._click(approval_url, "/cancel")


@contextlib.contextmanager
def running_paypal_peer(workdir: Path) -> Iterator[PaypalPeer]:
    """The fake on a free loopback port, its log in ``workdir`` (emptied first); stopped on exit."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    port = free_port()
    child = start_module("paypal_peer", "devtools.paypal_peer", ["--host", HOST, "--port", str(port)], workdir=workdir)
    try:
        peer = PaypalPeer(api_base=f"http://{HOST}:{port}", workdir=workdir, pid=child.process.pid)
        wait_healthy(f"{peer.api_base}/_peer/health", [child], what="the PayPal fake")
        yield peer
    finally:
        child.stop()
