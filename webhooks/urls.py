from django.urls import path

from webhooks import views

app_name = "webhooks"

urlpatterns = [
    path("stripe/", views.stripe_webhook, name="stripe"),
    path("paypal/", views.paypal_webhook, name="paypal"),
]
