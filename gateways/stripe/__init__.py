"""Stripe: Checkout Sessions (cards, 3-D Secure), verified webhooks, fetch-back, refunds."""
