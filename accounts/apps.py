from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and login"

    def ready(self) -> None:
        # the receivers use models: imported once the apps are loaded (accounts/signals.py)
        from accounts import receivers  # noqa: PLC0415

        receivers.connect()
