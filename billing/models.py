"""Customers of the hosting provider and who may act for them."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from guardian.models import UserObjectPermissionBase

from paymenter.encrypted_fields import EncryptedJSONField, EncryptedTextField
from paymenter.scoping import PrincipalScopedManager


class Customer(models.Model):
    """A billed party, created by O2S. Personal data is encrypted at rest.

    ``billing_country`` stays in clear text: GST and fraud rules need it in queries.
    ``email_index`` is the blind index (HMAC) of the email address for exact lookups.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    external_id = models.CharField("O2S id", max_length=64, unique=True)
    billing_country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2, e.g. AU")
    name = EncryptedTextField()
    email = EncryptedTextField()
    email_index = models.CharField(max_length=64, unique=True, editable=False)
    phone = EncryptedTextField(blank=True, null=True)
    postal_address = EncryptedJSONField(blank=True, null=True)
    tax_id = EncryptedTextField("ABN / tax id", blank=True, null=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PrincipalScopedManager()

    class Meta:
        ordering = ["created_at"]
        permissions = [
            ("view_customer_pii", "Can see customer personal data unmasked"),
            ("view_customer_invoices", "Can view the customer's invoices"),
            ("pay_customer_invoices", "Can pay the customer's invoices"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(billing_country__regex=r"^[A-Z]{2}$"), name="customer_country_iso2"
            ),
            models.CheckConstraint(condition=~models.Q(external_id=""), name="customer_external_id_set"),
        ]

    def __str__(self) -> str:
        return f"Customer {self.external_id}"


class CustomerMembership(models.Model):
    """A Django user who belongs to a customer (portal login). Rights are per object
    permissions on the customer (django-guardian), granted by ``customer_grant_access``."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="customer_memberships")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PrincipalScopedManager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "user"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user_id} -> {self.customer_id}"


class CustomerUserObjectPermission(UserObjectPermissionBase):
    """Guardian's per-object permissions on customers, with a real foreign key so that
    row-level security can key on ``customer_id``."""

    content_object = models.ForeignKey(Customer, on_delete=models.CASCADE, db_column="customer_id")

    class Meta(UserObjectPermissionBase.Meta):
        abstract = False
