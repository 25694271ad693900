from django.apps import AppConfig


class PaymenterConfig(AppConfig):
    name = "paymenter"
    verbose_name = "Paymenter platform"

    def ready(self) -> None:
        from paymenter import checks  # noqa: F401, PLC0415 - registers system checks
