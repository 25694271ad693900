from django.urls import path

from portal import views

app_name = "portal"

urlpatterns = [
    path("pay/<str:token>/", views.hosted_invoice, name="hosted-invoice"),
    path("pay/<str:token>/start/<str:gateway>/", views.payment_start, name="payment-start"),
    path("payments/<uuid:attempt_id>/return/", views.payment_return, name="payment-return"),
    path("payments/<uuid:attempt_id>/cancelled/", views.payment_cancelled, name="payment-cancelled"),
]
