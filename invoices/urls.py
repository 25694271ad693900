from django.urls import path

from invoices import views

app_name = "invoices"

urlpatterns = [
    path("pay/<str:token>/", views.hosted_invoice, name="hosted-invoice"),
]
