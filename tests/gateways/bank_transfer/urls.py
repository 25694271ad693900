"""The root URLconf with the bank transfer admin registered, for these tests only.

``gateways/admin.py`` imports ``gateways.bank_transfer_admin`` once the lead wires it; until
then (and in any run where the URLconf was built before this module was imported) the
admin's URLs are built afresh here, from the same ``admin.site``.
"""

from django.contrib import admin
from django.urls import path

from config.urls import handler400, handler403, handler404, handler500
from config.urls import urlpatterns as root_patterns
from gateways import bank_transfer_admin  # noqa: F401 - registers the ModelAdmins on admin.site

urlpatterns = [path("admin/", admin.site.urls), *root_patterns]

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]
