"""pytest fixtures for the local Stripe test peer (``-p tests.stripe_peer_fixtures``).

``stripe_peer`` (session scope) starts localstripe and ``devtools.stripe_peer`` on free
loopback ports (``devtools/stripe_peer/harness.py``) and stops both when the session ends.
``stripe_settings`` points the app's settings at the peer and resets it, so every test starts
with no sessions, no events and the start-up webhook configuration.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_django.fixtures import Settings

from devtools.stripe_peer.harness import PaymentFailed, StripePeer, running_stripe_peer

__all__ = ["PaymentFailed", "StripePeer", "stripe_peer", "stripe_settings"]


@pytest.fixture(scope="session")
def stripe_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StripePeer]:
    """localstripe and the peer as subprocesses on free loopback ports, for the whole session."""
    with running_stripe_peer(tmp_path_factory.mktemp("stripe_peer")) as peer:
        yield peer


@pytest.fixture
def stripe_settings(stripe_peer: StripePeer, settings: Settings) -> StripePeer:
    """The app's Stripe settings aimed at a freshly reset peer."""
    stripe_peer.reset()
    settings.STRIPE_API_BASE = stripe_peer.api_base
    settings.STRIPE_SECRET_KEY = "sk_test_peer"
    settings.STRIPE_WEBHOOK_SECRETS = ["whsec_test_peer"]
    settings.STRIPE_TIMEOUT_SECONDS = 10
    return stripe_peer
