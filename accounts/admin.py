"""The "Invite a user" action on the customer admin (accounts/invitations.py).

Added here, to the ``CustomerAdmin`` that ``billing/admin.py`` registers (billing precedes
accounts in INSTALLED_APPS), so the domain's admin module does not import a channel.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from accounts.invitations import customer_user_invite
from billing.errors import BillingError
from billing.models import Customer
from billing.selectors import principal_for_user


class InvitationForm(forms.Form):
    email = forms.EmailField(label="E-mail address of the person to invite", max_length=150)


@admin.action(description="Invite a user to see and pay this customer's invoices", permissions=["change"])
def invite_customer_user(model_admin: Any, request: HttpRequest, queryset: QuerySet[Customer]) -> HttpResponse | None:
    customers = list(queryset[:2])
    if len(customers) != 1:
        model_admin.message_user(request, "Select exactly one customer to invite a user to.", messages.ERROR)
        return None
    [customer] = customers
    form = InvitationForm(request.POST if "invite" in request.POST else None)
    if form.is_valid():
        principal = principal_for_user(request.user)
        assert principal is not None  # the admin requires a signed-in staff user  # noqa: S101
        try:
            user = customer_user_invite(principal=principal, customer_id=customer.id, email=form.cleaned_data["email"])
        except BillingError as exc:
            model_admin.message_user(request, f"Not invited: {exc.message} {exc.fields}", messages.ERROR)
            return None
        model_admin.message_user(request, f"Invited {user.email}: the invitation e-mail is on its way.")
        return None
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Invite a user",
        "customer": customer,
        "form": form,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "opts": model_admin.model._meta,
    }
    return TemplateResponse(request, "accounts/admin/invite_customer_user.html", context)


customer_admin = admin.site.get_model_admin(Customer)
customer_admin.actions = (*(customer_admin.actions or ()), invite_customer_user)
