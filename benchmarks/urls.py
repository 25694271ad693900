"""The application's URLs plus the one-statement baselines (see ``benchmarks.views``)."""

from django.urls import path

from benchmarks.views import baseline_select_list, baseline_select_one, baseline_view
from config.urls import handler400, handler403, handler404, handler500
from config.urls import urlpatterns as paymenter_urlpatterns

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]

urlpatterns = [
    *paymenter_urlpatterns,
    path("bench/baseline-insert/", baseline_view, name="bench-baseline-insert"),
    path("bench/baseline-select/", baseline_select_list, name="bench-baseline-select"),
    path("bench/baseline-select/<int:row_id>/", baseline_select_one, name="bench-baseline-select-one"),
]
