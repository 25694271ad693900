"""PayPal webhook event fixtures (``samples/*.json``, shaped like PayPal's published samples),
and handing a delivery to the app."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.test import Client

SAMPLES = Path(__file__).with_name("samples")
ORDER_ID = "5O190127TN364715T"
CAPTURE_ID = "29Y24445UY2083144"
REFUND_ID = "1Y107995YT783435V"
DISPUTE_ID = "PP-D-27803"


def load(name: str, **changes: Any) -> dict[str, Any]:
    """The event ``samples/<name>.json``, top-level keys replaced by ``changes`` (``id``...)."""
    event: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text())
    event.update(changes)
    return event


WEBHOOK_URL = "/webhooks/paypal/"


def post_delivery(body: bytes, headers: Mapping[str, str]) -> Any:
    """Hand a delivery to ``/webhooks/paypal/`` as PayPal would (its ``PAYPAL-*`` headers)."""
    sent = {name: value for name, value in headers.items() if name.lower().startswith("paypal-")}
    return Client().post(WEBHOOK_URL, data=body, content_type="application/json", headers=sent)
