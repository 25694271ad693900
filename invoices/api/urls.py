"""``/api/v1/invoices/`` (included by ``paymenter/urls.py``)."""

from __future__ import annotations

from django.urls import path

from invoices.api import views

urlpatterns = [
    path("invoices/", views.InvoicesView.as_view(), name="o2s-invoices"),
    path("invoices/preview/", views.InvoicePreviewView.as_view(), name="o2s-invoice-preview"),
    path("invoices/<uuid:invoice_id>/", views.InvoiceView.as_view(), name="o2s-invoice"),
    path("invoices/<uuid:invoice_id>/void/", views.InvoiceVoidView.as_view(), name="o2s-invoice-void"),
]
