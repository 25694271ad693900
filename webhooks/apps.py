from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """The gateways' webhook endpoints (a channel): verify, store once, answer fast."""

    name = "webhooks"
    default_auto_field = "django.db.models.BigAutoField"
