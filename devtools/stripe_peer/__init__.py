"""A local Stripe test peer: Checkout Sessions and a hosted 3-D Secure test page over localstripe.

The app's tests and ``make run`` need Stripe Checkout without the internet. localstripe (GPL,
run out of process by :mod:`devtools.localstripe_launcher`) fakes the core API but has no
Checkout; this package adds it as one base URL for ``STRIPE_API_BASE`` and proxies the rest.
The app never imports this package or localstripe: it only speaks HTTP to the peer.

Run: ``python -m devtools.stripe_peer --host 127.0.0.1 --port P --localstripe-url URL``.
"""
