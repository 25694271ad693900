from django.urls import path

from portal import documents, views

app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("invoices/", views.invoice_list, name="invoice-list"),
    path("invoices/<uuid:invoice_id>/", views.invoice_detail, name="invoice-detail"),
    path("invoices/<uuid:invoice_id>/pay/<str:gateway>/", views.invoice_pay, name="invoice-pay"),
    path("pay/<str:token>/", views.hosted_invoice, name="hosted-invoice"),
    path("pay/<str:token>/start/<str:gateway>/", views.payment_start, name="payment-start"),
    path("payments/<uuid:attempt_id>/return/", views.payment_return, name="payment-return"),
    path("payments/<uuid:attempt_id>/cancelled/", views.payment_cancelled, name="payment-cancelled"),
    # PDF documents (portal/documents.py)
    path("invoices/<uuid:invoice_id>/tax-invoice.pdf", documents.invoice_pdf_download, name="invoice-pdf"),
    path("payments/<uuid:payment_id>/receipt.pdf", documents.receipt_pdf_download, name="receipt-pdf"),
    path("credit-notes/<uuid:credit_note_id>.pdf", documents.credit_note_pdf_download, name="credit-note-pdf"),
    path("pay/<str:token>/tax-invoice.pdf", documents.hosted_invoice_pdf, name="hosted-invoice-pdf"),
]
