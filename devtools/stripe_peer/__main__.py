"""``python -m devtools.stripe_peer``: serve the peer on a loopback address until interrupted."""

from __future__ import annotations

import argparse
import contextlib
import logging

from devtools.localstripe_launcher import is_loopback
from devtools.stripe_peer.server import DELIVERY_MODES, WebhookConfig, serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devtools.stripe_peer", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument("--port", type=int, default=8421)
    parser.add_argument("--localstripe-url", required=True, help="e.g. http://127.0.0.1:8420")
    parser.add_argument("--webhook-url", help="where the app receives Stripe webhooks")
    parser.add_argument("--webhook-secret", help="whsec_... the app verifies signatures with")
    parser.add_argument("--delivery", choices=DELIVERY_MODES, default="deliver")
    args = parser.parse_args(argv)
    if not is_loopback(args.host):  # a fake payment API must not be reachable from the network
        parser.error(f"--host must be a loopback address, not {args.host!r}")
    logging.basicConfig(level=logging.INFO, format="stripe_peer %(levelname)s %(message)s")
    webhook = WebhookConfig(url=args.webhook_url, secret=args.webhook_secret, delivery=args.delivery)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the way to stop it
        serve(host=args.host, port=args.port, localstripe_url=args.localstripe_url, webhook=webhook)


if __name__ == "__main__":
    main()
