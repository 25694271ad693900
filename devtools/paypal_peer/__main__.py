"""``python -m devtools.paypal_peer``: serve the fake on a loopback address until interrupted.

Without ``--webhook-url`` it only records its events (a test configures it over
``/_peer/config``); ``make run`` starts it delivering, signed with its development PKI's leaf
key (``--signing-key-file``: a file, so the key is not on a command line) under ``--cert-url``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from pathlib import Path

from devtools.localstripe_launcher import is_loopback
from devtools.paypal_peer.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DELIVERY_MODES, Config, serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devtools.paypal_peer", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument("--port", type=int, default=8431)
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID, help="the app's PAYPAL_CLIENT_ID")
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET, help="the app's PAYPAL_CLIENT_SECRET")
    parser.add_argument("--webhook-url", help="where the app receives PayPal webhooks")
    parser.add_argument("--webhook-id", default=Config.webhook_id, help="the app's PAYPAL_WEBHOOK_ID")
    parser.add_argument("--signing-key-file", type=Path, help="PEM: the RSA key deliveries are signed with")
    parser.add_argument("--cert-url", help="the PAYPAL-CERT-URL deliveries name (the key's certificate)")
    parser.add_argument("--delivery", choices=DELIVERY_MODES, default="deliver")
    args = parser.parse_args(argv)
    if not is_loopback(args.host):  # a fake payment API must not be reachable from the network
        parser.error(f"--host must be a loopback address, not {args.host!r}")
    if (args.signing_key_file is None) != (args.cert_url is None):
        parser.error("--signing-key-file and --cert-url go together (unsigned deliveries otherwise)")
    signing_key_pem = None
    if args.signing_key_file is not None:
        try:
            signing_key_pem = args.signing_key_file.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            parser.error(f"cannot read --signing-key-file: {exc}")
    config = Config(
        webhook_url=args.webhook_url,
        webhook_id=args.webhook_id,
        signing_key_pem=signing_key_pem,
        cert_url=args.cert_url,
        delivery=args.delivery,
    )
    logging.basicConfig(level=logging.INFO, format="paypal_peer %(levelname)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the way to stop it
        serve(
            host=args.host,
            port=args.port,
            client_id=args.client_id,
            client_secret=args.client_secret,
            config=config,
        )


if __name__ == "__main__":
    main()
