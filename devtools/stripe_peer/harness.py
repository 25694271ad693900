"""The local Stripe test peer as a pair of processes, for the tests, the benchmarks and ``make run``.

:func:`running_stripe_peer` starts localstripe (through ``devtools.localstripe_launcher``,
GPL: its own process, never imported here) and ``devtools.stripe_peer`` on free loopback
ports, waits until the peer has registered its webhook at localstripe, and stops both on
exit. :class:`StripePeer` speaks the peer's control API, pays on its hosted checkout page as a
browser would (card form, then the 3-D Secure challenge), and plays what happens at Stripe
without the app asking: a refund in the dashboard, a dispute opened and decided, an early fraud
warning. Both are reached over HTTP only. Starting, waiting for and stopping the processes is
:mod:`devtools.peer_process`, shared with the PayPal fake's harness.
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

from devtools.peer_process import HOST, Child, free_port, start_module, wait_healthy

HTTP_TIMEOUT_SECONDS = 30
API_KEY = "sk_test_stripe_peer_harness"  # the peer takes any sk_test_ key
_FORM = re.compile(r'<form[^>]*action="(?P<action>[^"]+)"[^>]*>(?P<body>.*?)</form>', re.DOTALL)
_HIDDEN = re.compile(r'<input type="hidden" name="(?P<name>[^"]+)" value="(?P<value>[^"]*)">')


class PaymentFailed(AssertionError):
    """The hosted checkout page reported a failed payment (declined or failed 3-D Secure)."""


def _forms(html: str) -> list[tuple[str, str]]:
    return [(unescape(m["action"]), m["body"]) for m in _FORM.finditer(html)]


@dataclasses.dataclass(frozen=True)
class StripePeer:
    """The running peer: ``api_base`` is the app's ``STRIPE_API_BASE``."""

    api_base: str
    localstripe_url: str
    workdir: Path
    pids: tuple[int, ...] = ()  # localstripe's and the peer's processes

    def _control(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        resp = requests.request(method, f"{self.api_base}/_peer/{path}", timeout=HTTP_TIMEOUT_SECONDS, **kwargs)
        if resp.status_code >= 400:  # the peer says why (a Stripe error body): keep it in the message
            raise requests.HTTPError(f"{method} /_peer/{path}: HTTP {resp.status_code}: {resp.text}", response=resp)
        return resp

    def _api(self, path: str, data: dict[str, str]) -> dict[str, Any]:
        resp = requests.post(
            f"{self.api_base}/v1/{path}",
            data=data,
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=HTTP_TIMEOUT_SECONDS,
        )
        if resp.status_code >= 400:
            raise requests.HTTPError(f"POST /v1/{path}: HTTP {resp.status_code}: {resp.text}", response=resp)
        created: dict[str, Any] = resp.json()
        return created

    def payment_intent_paid(self, amount: int, currency: str = "aud", metadata: dict[str, str] | None = None) -> str:
        """A PaymentIntent paid by card through the API (no Checkout, no 3-D Secure); its id."""
        card = {"type": "card", "card[number]": "4242424242424242", "card[exp_month]": "12", "card[cvc]": "123"}
        method = self._api("payment_methods", {**card, "card[exp_year]": "2034"})
        data = {"amount": str(amount), "currency": currency, "payment_method": method["id"], "confirm": "true"}
        data.update({f"metadata[{k}]": v for k, v in (metadata or {}).items()})
        intent = self._api("payment_intents", data)
        if intent["status"] != "succeeded":
            raise PaymentFailed(f"payment intent {intent['id']} is {intent['status']}")
        return str(intent["id"])

    def payment_intent_backdate(self, payment_intent: str, created: int) -> None:
        """Set when Stripe says ``payment_intent`` was created (a Unix time): lists and reports
        over fixed days, whatever the clock says."""
        self._control("POST", f"payment_intents/{payment_intent}/backdate", json={"created": created})

    def dashboard_refund(self, payment_intent: str, amount: int | None = None) -> dict[str, Any]:
        """Refund ``amount`` (by default all that is left) as staff would in Stripe's dashboard:
        no metadata, so no ``request_id``. Sends ``charge.refunded`` and ``refund.created``."""
        given = {"payment_intent": payment_intent, "amount": amount}
        refund: dict[str, Any] = self._control(
            "POST", "refunds", json={k: v for k, v in given.items() if v is not None}
        ).json()
        return refund

    def dispute_open(
        self, payment_intent: str, amount: int | None = None, reason: str = "fraudulent"
    ) -> dict[str, Any]:
        """The card network opens a chargeback (``needs_response``) on the payment's charge, for
        ``amount`` (by default the whole charge). Sends ``charge.dispute.created``."""
        given = {"payment_intent": payment_intent, "amount": amount, "reason": reason}
        dispute: dict[str, Any] = self._control(
            "POST", "disputes", json={k: v for k, v in given.items() if v is not None}
        ).json()
        return dispute

    def dispute_close(self, dispute_id: str, status: str) -> dict[str, Any]:
        """The network decides: ``status`` is ``won`` or ``lost``. Sends ``charge.dispute.closed``."""
        dispute: dict[str, Any] = self._control("POST", f"disputes/{dispute_id}/close", json={"status": status}).json()
        return dispute

    def fraud_warning_create(
        self, payment_intent: str, fraud_type: str = "made_with_stolen_card", actionable: bool = True
    ) -> dict[str, Any]:
        """The issuer reports the payment's card as used fraudulently (a Radar early fraud
        warning). Sends ``radar.early_fraud_warning.created``."""
        warning: dict[str, Any] = self._control(
            "POST",
            "early_fraud_warnings",
            json={"payment_intent": payment_intent, "fraud_type": fraud_type, "actionable": actionable},
        ).json()
        return warning

    def configure(
        self, webhook_url: str | None = None, webhook_secret: str | None = None, delivery: str | None = None
    ) -> None:
        """Change what is given (``None`` leaves a setting as it is; ``reset`` restores all)."""
        given = {"webhook_url": webhook_url, "webhook_secret": webhook_secret, "delivery": delivery}
        self._control("POST", "config", json={k: v for k, v in given.items() if v is not None})

    def release(self) -> list[str]:
        """Deliver the held events now, in order; returns their ids."""
        ids: list[str] = self._control("POST", "release").json()
        return ids

    def events(self) -> list[dict[str, Any]]:
        """Every event so far (the peer's and localstripe's), complete, for assertions or replay."""
        events: list[dict[str, Any]] = self._control("GET", "events").json()
        return events

    def reset(self) -> None:
        self._control("POST", "reset")

    def checkout_url(self, session_id: str) -> str:
        return f"{self.api_base}/checkout/{session_id}"

    def pay(self, session_url: str, card_number: str = "4000002500003155", authenticate: bool = True) -> str:
        """Pay on the hosted page as a browser would; the final redirect's ``Location``.

        The redirect to the app's success_url is not followed (the test decides what to do).
        Raises :class:`PaymentFailed` with the page's message if the payment failed.
        """
        with requests.Session() as browser:
            page = browser.get(session_url, timeout=HTTP_TIMEOUT_SECONDS)
            page.raise_for_status()
            action = next((a for a, _ in _forms(page.text) if a.endswith("/pay")), None)
            if action is None:
                raise PaymentFailed(f"no payment form on {session_url}: {page.text}")
            resp = browser.post(
                urljoin(session_url, action),
                data={"card_number": card_number},
                allow_redirects=False,
                timeout=HTTP_TIMEOUT_SECONDS,
            )
            location = resp.headers.get("Location", "")
            if resp.status_code == 303 and location.endswith("/3ds"):
                challenge = browser.get(urljoin(session_url, location), timeout=HTTP_TIMEOUT_SECONDS)
                challenge.raise_for_status()
                outcome = "success" if authenticate else "fail"
                action, body = next((a, b) for a, b in _forms(challenge.text) if f'value="{outcome}"' in b)
                fields = {m["name"]: unescape(m["value"]) for m in _HIDDEN.finditer(body)}
                resp = browser.post(
                    urljoin(session_url, action), data=fields, allow_redirects=False, timeout=HTTP_TIMEOUT_SECONDS
                )
                location = resp.headers.get("Location", "")
            if resp.status_code != 303:
                message = re.search(r'id="(?:failure|error)"[^>]*>(?P<m>[^<]*)<', resp.text)
                raise PaymentFailed(unescape(message["m"]) if message else f"HTTP {resp.status_code}: {resp.text}")
            return location


@contextlib.contextmanager
def running_stripe_peer(workdir: Path) -> Iterator[StripePeer]:
    """localstripe and the peer on free loopback ports, state and logs in ``workdir`` (emptied
    first); both stopped on exit."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    localstripe_port, peer_port = free_port(), free_port()
    localstripe_url = f"http://{HOST}:{localstripe_port}"
    children: list[Child] = []
    try:
        localstripe_args = ["--host", HOST, "--port", str(localstripe_port)]
        localstripe_args += ["--state-dir", str(workdir / "localstripe"), "--from-scratch"]
        children.append(start_module("localstripe", "devtools.localstripe_launcher", localstripe_args, workdir=workdir))
        peer_args = ["--host", HOST, "--port", str(peer_port), "--localstripe-url", localstripe_url]
        children.append(start_module("stripe_peer", "devtools.stripe_peer", peer_args, workdir=workdir))
        peer = StripePeer(
            api_base=f"http://{HOST}:{peer_port}",
            localstripe_url=localstripe_url,
            workdir=workdir,
            pids=tuple(child.process.pid for child in children),
        )
        # The peer is healthy once it has registered its webhook at localstripe: both are up.
        wait_healthy(f"{peer.api_base}/_peer/health", children, what="the Stripe peer")
        yield peer
    finally:
        for child in children:
            child.stop()
