"""A local, stateful fake of PayPal's REST API (Orders v2, payments, disputes, reporting,
webhooks), for the tests and local development without the internet.

One base URL (the app's ``PAYPAL_API_BASE``) serves the OAuth token endpoint, orders,
captures, refunds, disputes, the transaction search and ``verify-webhook-signature``, the
buyer's approval page (``/checkoutnow?token=<order>``) and a control API for tests
(``/_peer/...``). Webhooks are signed exactly as PayPal signs them (:mod:`.signing`) with a
key and certificate URL the test configures. The app never imports this package: it only
speaks HTTP to it, through PayPal's own SDK.

Run: ``python -m devtools.paypal_peer --host 127.0.0.1 --port P``.
"""
