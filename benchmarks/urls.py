"""The application's URLs plus ``bench/baseline-insert/`` (see ``benchmarks.views``)."""

from django.urls import path

from benchmarks.views import baseline_view
from config.urls import handler400, handler403, handler404, handler500
from config.urls import urlpatterns as paymenter_urlpatterns

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]

urlpatterns = [
    *paymenter_urlpatterns,
    path("bench/baseline-insert/", baseline_view, name="bench-baseline-insert"),
]
