"""The O2S REST API under ``/api/v1/`` (included by ``config/urls.py``)."""

from __future__ import annotations

from django.urls import path

from o2s.api import schema, views

urlpatterns = [
    path("customers/", views.CustomersView.as_view(), name="o2s-customers"),
    path("customers/<uuid:customer_id>/", views.CustomerView.as_view(), name="o2s-customer"),
    path("products/", views.ProductsView.as_view(), name="o2s-products"),
    path("products/<slug:code>/", views.ProductView.as_view(), name="o2s-product"),
    path("invoices/", views.InvoicesView.as_view(), name="o2s-invoices"),
    path("invoices/preview/", views.InvoicePreviewView.as_view(), name="o2s-invoice-preview"),
    path("invoices/<uuid:invoice_id>/", views.InvoiceView.as_view(), name="o2s-invoice"),
    path("invoices/<uuid:invoice_id>/void/", views.InvoiceVoidView.as_view(), name="o2s-invoice-void"),
    path("schema/", schema.SchemaView.as_view(), name="o2s-schema"),
    path("docs/", schema.docs_view, name="o2s-docs"),
]
