from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing: customers"

    def ready(self) -> None:
        from billing import callback_delivery  # noqa: PLC0415 - needs the app registry

        callback_delivery.register()
