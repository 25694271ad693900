"""A local Stripe test peer: Checkout Sessions and a hosted 3-D Secure test page over localstripe.

The app's tests and ``make run`` need Stripe Checkout without the internet. localstripe (GPL,
run out of process by :mod:`devtools.localstripe_launcher`) fakes the core API but has no
Checkout, no disputes, no early fraud warnings, and lets a charge be refunded twice over; this
package adds what is missing as one base URL for ``STRIPE_API_BASE`` and proxies the rest
(``server.py`` lists what is served where).
The app never imports this package or localstripe: it only speaks HTTP to the peer.

Run: ``python -m devtools.stripe_peer --host 127.0.0.1 --port P --localstripe-url URL``.
"""
