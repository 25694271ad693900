from django.apps import AppConfig


class GatewaysConfig(AppConfig):
    """Payment gateway adapters (Stripe, PayPal, bank transfer) arrive with the gateway issue."""

    name = "gateways"
    verbose_name = "Payment gateways"
