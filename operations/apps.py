from django.apps import AppConfig
from django.contrib.auth.signals import user_logged_in, user_login_failed


class OperationsConfig(AppConfig):
    name = "operations"
    verbose_name = "Operator tools"

    def ready(self) -> None:
        # Django's only hook for sign-ins (operations/staff_logins.py); the receivers use
        # models, so they are imported once the apps are loaded.
        from operations import staff_logins  # noqa: PLC0415

        user_logged_in.connect(staff_logins.staff_login_succeeded, dispatch_uid="operations.staff_login_succeeded")
        user_login_failed.connect(staff_logins.staff_login_failed, dispatch_uid="operations.staff_login_failed")
