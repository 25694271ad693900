from django.apps import AppConfig


class FraudConfig(AppConfig):
    """Fraud rules and the staff review queue arrive with the fraud issue."""

    name = "fraud"
    verbose_name = "Fraud review"
