"""``/api/v1/customers/`` and ``/api/v1/products/`` (included by ``paymenter/urls.py``)."""

from __future__ import annotations

from django.urls import path

from billing.api import views

urlpatterns = [
    path("customers/", views.CustomersView.as_view(), name="o2s-customers"),
    path("customers/<uuid:customer_id>/", views.CustomerView.as_view(), name="o2s-customer"),
    path("products/", views.ProductsView.as_view(), name="o2s-products"),
    path("products/<slug:code>/", views.ProductView.as_view(), name="o2s-product"),
]
