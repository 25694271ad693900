"""The root URLconf: the composition root that mounts every channel (docs/architecture.md)."""

from django.contrib import admin
from django.urls import include, path

from accounts.admin_login import admin_login_redirect
from paymenter import api_errors, health

# one login for everyone: the admin's login page redirects to allauth's (docs/portal.md)
admin.site.login = admin_login_redirect  # type: ignore[method-assign]

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    # login, logout, password reset, e-mail verification, MFA (django-allauth; docs/portal.md)
    path("accounts/", include("allauth.urls")),
    path("", include("portal.urls")),  # pay/<token>/: the hosted invoice page
    # O2S REST API (docs/o2s-integration.md), its OpenAPI schema and the staff docs page
    path("api/v1/", include("o2s.api.urls")),
    # gateway webhooks: verified, stored once, processed by the worker (docs/webhooks.md)
    path("webhooks/", include("webhooks.urls")),
]

# JSON errors for /api/ paths that fail outside a DRF view (paymenter.api_errors).
handler400 = api_errors.bad_request
handler403 = api_errors.permission_denied
handler404 = api_errors.page_not_found
handler500 = api_errors.server_error
