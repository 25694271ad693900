"""PayPal (Orders v2, intent CAPTURE): ``client`` (the SDK and the endpoints it lacks, errors
classified, the OAuth token cached in Redis), ``adapter`` (the gateway interface),
``webhooks`` (deliveries verified and parsed) and ``certificates`` (PayPal's signing
certificates: URL rule, fetch, chain check, cache). docs/payments.md, docs/webhooks.md."""
