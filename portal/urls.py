from django.urls import path

from portal import views

app_name = "portal"

urlpatterns = [
    path("pay/<str:token>/", views.hosted_invoice, name="hosted-invoice"),
]
