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


class ApiKey(models.Model):
    """A credential O2S uses for the REST API: ``Authorization: Bearer <key>``.

    Only a SHA-256 hash of the key is stored; ``lookup_id`` (the public part after the
    prefix) finds the row and the hash is then compared in constant time. A key works
    only from ``allowed_networks`` (CIDRs), until it expires or is revoked.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    lookup_id = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    allowed_networks = models.JSONField(default=list, help_text="CIDRs, e.g. ['10.0.0.0/8']")
    can_invoice_custom_lines = models.BooleanField(
        default=False, help_text="May send invoice lines with an explicit unit amount (audited)"
    )
    rate_limit_per_minute = models.PositiveIntegerField(default=600)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} (pmk_{self.lookup_id}…)"


class TaxTreatment(models.TextChoices):
    STANDARD = "standard", "Standard (GST for Australian customers)"
    GST_FREE = "gst_free", "Always GST-free"


class Product(models.Model):
    """A catalogue item O2S invoices by code; prices live per currency."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code = models.SlugField(max_length=64, unique=True)
    description = models.CharField(max_length=500)
    tax_treatment = models.CharField(max_length=16, choices=TaxTreatment.choices, default=TaxTreatment.STANDARD)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class ProductPrice(models.Model):
    """The GST-exclusive unit price of a product in one currency (minor units)."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="prices")
    currency = models.CharField(max_length=3)
    unit_amount_minor = models.BigIntegerField()

    class Meta:
        ordering = ["product", "currency"]
        constraints = [
            models.UniqueConstraint(fields=["product", "currency"], name="productprice_unique_currency"),
            models.CheckConstraint(condition=models.Q(unit_amount_minor__gte=0), name="productprice_non_negative"),
            models.CheckConstraint(condition=models.Q(currency__regex=r"^[A-Z]{3}$"), name="productprice_currency_iso"),
        ]

    def __str__(self) -> str:
        return f"{self.product_id} {self.currency} {self.unit_amount_minor}"
