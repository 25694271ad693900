from django.contrib import admin
from django.urls import path

from paymenter import api_errors, health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
]

# JSON errors for /api/ paths that fail outside a DRF view (paymenter.api_errors).
handler400 = api_errors.bad_request
handler403 = api_errors.permission_denied
handler404 = api_errors.page_not_found
handler500 = api_errors.server_error
