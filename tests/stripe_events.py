"""Stripe events for tests: Stripe's own example objects (tests/fixtures/stripe, MIT), edited
for a scenario, wrapped in an event and signed with the real scheme (the SDK's
``WebhookSignature.generate_signature_header``)."""

from __future__ import annotations

import copy
import json
import secrets
import time
from functools import cache
from pathlib import Path
from typing import Any

import stripe

FIXTURES = Path(__file__).parent / "fixtures" / "stripe" / "objects.json"
WEBHOOK_SECRET = "whsec_test_peer"  # what tests.stripe_peer_fixtures.stripe_settings configures
WEBHOOK_URL = "/webhooks/stripe/"


def stripe_webhooks_only(settings: Any) -> None:
    """Stripe configured to accept signed deliveries, and no Stripe API reachable: for tests
    of what happens to a delivery before anything is fetched back from the gateway."""
    settings.STRIPE_SECRET_KEY = "sk_test_unused"
    settings.STRIPE_WEBHOOK_SECRETS = [WEBHOOK_SECRET]
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # never reached: nothing here is processed
    settings.STRIPE_WEBHOOK_ALLOWED_IPS = []


@cache
def _objects() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(FIXTURES.read_text())
    return loaded


def stripe_object(name: str, **changes: Any) -> dict[str, Any]:
    """A copy of Stripe's example ``name`` object with ``changes`` applied (top level)."""
    obj: dict[str, Any] = copy.deepcopy(_objects()[name])
    obj.update(changes)
    return obj


def stripe_event(event_type: str, data_object: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    return stripe_object(
        "event",
        id=event_id or f"evt_test_{secrets.token_hex(8)}",
        type=event_type,
        created=int(time.time()),
        livemode=False,
        data={"object": data_object, "previous_attributes": None},
        request={"id": None, "idempotency_key": None},
    )


def checkout_session_event(
    event_type: str = "checkout.session.completed",
    *,
    session_id: str = "cs_test_1",
    payment_intent: str | None = "pi_test_1",
    metadata: dict[str, str] | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    session = stripe_object(
        "checkout.session",
        id=session_id,
        payment_intent=payment_intent,
        status="complete" if event_type.endswith(("completed", "succeeded")) else "expired",
        payment_status="paid",
        metadata=metadata or {},
    )
    return stripe_event(event_type, session, event_id=event_id)


def signature(body: str, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe would send for ``body``."""
    header: str = stripe.WebhookSignature.generate_signature_header(
        payload=body, secret=secret, timestamp=int(time.time()) if timestamp is None else timestamp
    )
    return header


def signed(event: dict[str, Any], **options: Any) -> tuple[str, str]:
    """``(body, Stripe-Signature)`` for ``event``."""
    body = json.dumps(event)
    return body, signature(body, **options)
