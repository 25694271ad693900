"""Invoices, their lines, GST rates and the gapless number sequence.

Amounts are integer minor units of the invoice currency. Totals are written only by
``invoices.services`` from the lines; issued invoices are immutable (database triggers
enforce it, see migration ``0002``) and are never deleted - they are voided.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import F, Q

from billing.models import Customer
from paymenter.encrypted_fields import EncryptedJSONField
from paymenter.scoping import PrincipalScopedManager


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    OPEN = "open", "Open"
    PAID = "paid", "Paid"
    VOID = "void", "Void"
    UNCOLLECTIBLE = "uncollectible", "Uncollectible"
    PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
    REFUNDED = "refunded", "Refunded"
    DISPUTED = "disputed", "Disputed"
    """A payment of it is disputed (chargeback, PayPal dispute or reversal) and undecided."""


class TaxCode(models.TextChoices):
    GST = "GST", "GST 10%"
    GST_FREE_EXPORT = "GST_FREE_EXPORT", "GST-free export of services"
    GST_FREE = "GST_FREE", "GST-free supply"


class TaxRate(models.Model):
    """An effective-dated tax rate: valid from ``effective_from`` (inclusive) until
    ``effective_to`` (exclusive, open-ended when null)."""

    code = models.CharField(max_length=32, choices=TaxCode.choices)
    country = models.CharField(max_length=2)
    rate = models.DecimalField(max_digits=6, decimal_places=4, help_text="0.1000 is 10%")
    effective_from = models.DateField()
    effective_to = models.DateField(null=True, blank=True)
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["country", "code", "effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["code", "country", "effective_from"], name="taxrate_unique_start"),
            models.CheckConstraint(condition=Q(rate__gte=0) & Q(rate__lt=1), name="taxrate_rate_range"),
            models.CheckConstraint(
                condition=Q(effective_to__isnull=True) | Q(effective_to__gt=F("effective_from")),
                name="taxrate_period_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.country} {self.rate} from {self.effective_from}"


class InvoiceNumberSequence(models.Model):
    """The last number issued per prefix and year; locked while issuing, so numbers
    are gapless (a rolled-back issue releases its number)."""

    prefix = models.CharField(max_length=16)
    year = models.PositiveIntegerField()
    last_number = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["prefix", "year"], name="invoicenumber_unique_year")]

    def __str__(self) -> str:
        return f"{self.prefix}-{self.year}: {self.last_number}"


class Invoice(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    number = models.CharField(max_length=32, unique=True, null=True, blank=True)
    status = models.CharField(max_length=20, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT)
    currency = models.CharField(max_length=3)
    issue_date = models.DateField(null=True, blank=True, help_text="In the seller's time zone")
    due_date = models.DateField(null=True, blank=True)
    is_tax_invoice = models.BooleanField(default=False)
    seller_details = models.JSONField(default=dict, blank=True, help_text="Frozen at issue")
    buyer_details = EncryptedJSONField(null=True, blank=True, help_text="Frozen at issue (encrypted)")
    buyer_country = models.CharField(max_length=2, blank=True, help_text="Frozen at issue (GST basis)")
    subtotal_minor = models.BigIntegerField(default=0)
    tax_minor = models.BigIntegerField(default=0)
    total_minor = models.BigIntegerField(default=0)
    amount_paid_minor = models.BigIntegerField(default=0)
    amount_refunded_minor = models.BigIntegerField(default=0)
    checksum = models.CharField(max_length=64, blank=True)
    checksum_key_id = models.CharField(max_length=32, blank=True)
    void_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    issued_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)

    objects = PrincipalScopedManager()

    class Meta:
        ordering = ["-created_at"]
        permissions = [
            ("record_payment", "Can record a payment against an invoice"),
            ("process_refund", "Can refund an invoice"),
        ]
        indexes = [models.Index(fields=["customer", "status"], name="invoice_customer_status")]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=InvoiceStatus.values), name="invoice_status_valid"),
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"), name="invoice_currency_iso"),
            models.CheckConstraint(
                condition=Q(subtotal_minor__gte=0)
                & Q(tax_minor__gte=0)
                & Q(amount_paid_minor__gte=0)
                & Q(amount_refunded_minor__gte=0),
                name="invoice_amounts_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(total_minor=F("subtotal_minor") + F("tax_minor")), name="invoice_total_adds_up"
            ),
            models.CheckConstraint(
                condition=Q(amount_refunded_minor__lte=F("amount_paid_minor")), name="invoice_refund_le_paid"
            ),
            models.CheckConstraint(
                condition=Q(status=InvoiceStatus.DRAFT) | (Q(number__isnull=False) & ~Q(checksum="")),
                name="invoice_issued_has_number_and_checksum",
            ),
        ]

    def __str__(self) -> str:
        return self.number or f"Draft {self.id}"

    @property
    def amount_due_minor(self) -> int:
        """What the customer still owes: nothing unless the invoice is open or was
        written off as uncollectible (a late payment still settles it)."""
        if self.status not in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE):
            return 0
        return max(self.total_minor - self.amount_paid_minor, 0)


class InvoiceChecksumMismatch(models.Model):
    """The first time an issued invoice was found not to match its checksum (tampering).

    One row per invoice (the one-to-one is the unique constraint), written insert-on-conflict
    by ``invoices.services.invoice_checksum_mismatch_record``: the writer that inserts it
    audits and alerts, every later detection (reads, refused actions, the sweep) writes
    nothing. It is also the staff admin's list of tampered invoices. ``customer`` repeats
    the invoice's customer so that row-level security can key on it directly.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    invoice = models.OneToOneField(Invoice, on_delete=models.PROTECT, related_name="checksum_mismatch")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    detected_at = models.DateTimeField(auto_now_add=True)
    detected_by = models.CharField(max_length=300, help_text="The principal that first found it: actor type:id")
    attempted = models.CharField(max_length=64, help_text="What it was doing: a read, the sweep, void, payment ...")
    checksum_key_id = models.CharField(max_length=32, blank=True, help_text="The key id the invoice names")

    objects = PrincipalScopedManager()

    class Meta:
        ordering = ["-detected_at"]

    def __str__(self) -> str:
        return f"checksum mismatch of invoice {self.invoice_id}"


class InvoiceLine(models.Model):
    """One charge. ``customer`` repeats the invoice's customer so that row-level
    security can key on it directly."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="lines")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    position = models.PositiveIntegerField()
    description = models.CharField(max_length=500)
    product_code = models.CharField(max_length=64, blank=True, help_text="Catalogue product, if any")
    quantity = models.PositiveIntegerField()
    unit_amount_minor = models.BigIntegerField()
    tax_code = models.CharField(max_length=32, choices=TaxCode.choices)
    tax_rate = models.DecimalField(max_digits=6, decimal_places=4)
    subtotal_minor = models.BigIntegerField()
    tax_minor = models.BigIntegerField()
    total_minor = models.BigIntegerField()
    period_start = models.DateField(null=True, blank=True)
    period_end = models.DateField(null=True, blank=True)

    objects = PrincipalScopedManager()

    class Meta:
        ordering = ["invoice", "position"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "position"], name="invoiceline_unique_position"),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="invoiceline_quantity_positive"),
            models.CheckConstraint(
                condition=Q(unit_amount_minor__gte=0) & Q(subtotal_minor__gte=0) & Q(tax_minor__gte=0),
                name="invoiceline_amounts_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(subtotal_minor=F("quantity") * F("unit_amount_minor")),
                name="invoiceline_subtotal_adds_up",
            ),
            models.CheckConstraint(
                condition=Q(total_minor=F("subtotal_minor") + F("tax_minor")), name="invoiceline_total_adds_up"
            ),
            models.CheckConstraint(
                condition=Q(period_start__isnull=True)
                | Q(period_end__isnull=True)
                | Q(period_end__gte=F("period_start")),
                name="invoiceline_period_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.description}"


class CreditNote(models.Model):
    """A tax credit note: the document of a refund, reversing part of an invoice's lines.

    Numbered in its own gapless series (``CREDIT_NOTE_NUMBER_PREFIX``), frozen and
    checksummed like an invoice (``invoices.credit_notes``), never changed and never deleted
    (database triggers, migration ``0008``). ``customer`` repeats the invoice's customer so
    that row-level security can key on it directly. The refund that caused it points here
    (``gateways.Refund.credit_note``): invoices know nothing of gateways.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    number = models.CharField(max_length=32, unique=True)
    currency = models.CharField(max_length=3)
    issue_date = models.DateField(help_text="In the seller's time zone")
    reason = models.CharField(max_length=500, blank=True)
    seller_details = models.JSONField(default=dict, blank=True, help_text="The invoice's, frozen")
    buyer_details = EncryptedJSONField(null=True, blank=True, help_text="The invoice's, frozen (encrypted)")
    subtotal_minor = models.BigIntegerField()
    tax_minor = models.BigIntegerField()
    total_minor = models.BigIntegerField()
    checksum = models.CharField(max_length=64)
    checksum_key_id = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PrincipalScopedManager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["invoice"], name="creditnote_invoice")]
        constraints = [
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"), name="creditnote_currency_iso"),
            models.CheckConstraint(
                condition=Q(subtotal_minor__gte=0) & Q(tax_minor__gte=0) & Q(total_minor__gt=0),
                name="creditnote_amounts_positive",
            ),
            models.CheckConstraint(
                condition=Q(total_minor=F("subtotal_minor") + F("tax_minor")), name="creditnote_total_adds_up"
            ),
        ]

    def __str__(self) -> str:
        return self.number


class CreditNoteLine(models.Model):
    """The part of one invoice line a credit note reverses, with its share of the GST."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    credit_note = models.ForeignKey(CreditNote, on_delete=models.PROTECT, related_name="lines")
    invoice_line = models.ForeignKey(InvoiceLine, on_delete=models.PROTECT, related_name="credit_note_lines")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    position = models.PositiveIntegerField()
    description = models.CharField(max_length=500)
    tax_code = models.CharField(max_length=32, choices=TaxCode.choices)
    tax_rate = models.DecimalField(max_digits=6, decimal_places=4)
    subtotal_minor = models.BigIntegerField()
    tax_minor = models.BigIntegerField()
    total_minor = models.BigIntegerField()

    objects = PrincipalScopedManager()

    class Meta:
        ordering = ["credit_note", "position"]
        constraints = [
            models.UniqueConstraint(fields=["credit_note", "position"], name="creditnoteline_unique_position"),
            models.CheckConstraint(
                condition=Q(subtotal_minor__gte=0) & Q(tax_minor__gte=0) & Q(total_minor__gt=0),
                name="creditnoteline_amounts_positive",
            ),
            models.CheckConstraint(
                condition=Q(total_minor=F("subtotal_minor") + F("tax_minor")), name="creditnoteline_total_adds_up"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.description}"
