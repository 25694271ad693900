"""The payments ledger and the webhook inbox.

* :class:`PaymentAttempt` - one try to pay an invoice at one gateway (a checkout session).
  At most one is ``open`` per invoice and gateway (a partial unique index): a double-click
  on Pay reuses it.
* :class:`Payment` - money the gateway took, once per gateway transaction (unique). An
  invoice's amount paid is the sum of its ``applied`` payments (``gateways.ledger``); a
  payment in the wrong currency, one that would overpay, or one for an invoice that can no
  longer be paid is recorded ``held``: it never counts, and billing staff see it.
* :class:`GatewayCustomer` - the gateway's id of one of our customers (``cus_...``): ids only.
* :class:`WebhookEvent` - the inbox: every verified delivery, stored raw once per gateway
  event id, processed by a worker (docs/webhooks.md).
* :class:`Refund` - money given back from a payment, asked for by staff or made in the
  gateway's dashboard; a succeeded refund of an applied payment has a credit note.
* :class:`Dispute` - a chargeback, PayPal dispute or reversal of a payment.
* :class:`FraudWarning` - an early fraud warning about a payment (for the fraud rules).
* :class:`PaypalCertificate` - PayPal's webhook signing certificates, fetched or seeded.
* :class:`BankStatementImport` / :class:`BankStatementLine` - imported bank statements and
  what each credit line was matched to.

Every table that names a customer is under row-level security (migration ``0001``); the
inbox names none and is visible to staff and system scope only.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from billing.models import Customer
from gateways.base import GatewayCode, PaymentMethod
from invoices.models import CreditNote, Invoice
from paymenter.encrypted_fields import EncryptedTextField
from paymenter.scoping import PrincipalScopedManager

GATEWAY_CHOICES = [(code.value, code.value) for code in GatewayCode]
METHOD_CHOICES = [(method.value, method.value) for method in PaymentMethod]


class GatewayCustomer(models.Model):
    """The gateway's customer object for one of our customers, created on first payment."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="gateway_customers")
    gateway = models.CharField(max_length=20, choices=GATEWAY_CHOICES)
    gateway_customer_id = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PrincipalScopedManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "gateway"], name="gatewaycustomer_one_per_gateway"),
            models.UniqueConstraint(fields=["gateway", "gateway_customer_id"], name="gatewaycustomer_unique_id"),
        ]

    def __str__(self) -> str:
        return f"{self.gateway} {self.gateway_customer_id}"


class AttemptStatus(models.TextChoices):
    OPEN = "open", "Open"
    """Started; the customer is (or may be) at the gateway's page."""
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    EXPIRED = "expired", "Expired"
    """The session expired, was cancelled, or was superseded by a newer attempt."""


class PaymentAttempt(models.Model):
    """One try to pay an invoice at one gateway.

    ``amount_minor``/``currency`` are what the attempt asked for (the amount due when it
    started); the ledger still compares what the gateway reports with the invoice itself.
    ``gateway_session_id`` is empty between the row's insert and the gateway's answer.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="payment_attempts")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    gateway = models.CharField(max_length=20, choices=GATEWAY_CHOICES)
    status = models.CharField(max_length=16, choices=AttemptStatus.choices, default=AttemptStatus.OPEN)
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    gateway_session_id = models.CharField(max_length=255, blank=True)
    redirect_url = models.URLField(max_length=2048, blank=True)
    gateway_status = models.CharField(max_length=64, blank=True, help_text="The gateway's last word on it")
    failure_reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True, help_text="Last fetch-back")
    risk_assessment_id = models.UUIDField(
        null=True, blank=True, help_text="The fraud rules' assessment of its start (fraud app; no foreign key)"
    )

    objects = PrincipalScopedManager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"], name="attempt_status_created")]
        constraints = [
            models.UniqueConstraint(
                fields=["invoice", "gateway"],
                condition=Q(status="open"),
                name="attempt_one_open_per_invoice_gateway",
            ),
            models.UniqueConstraint(
                fields=["gateway", "gateway_session_id"],
                condition=~Q(gateway_session_id=""),
                name="attempt_unique_session",
            ),
            models.CheckConstraint(condition=Q(status__in=AttemptStatus.values), name="attempt_status_valid"),
            models.CheckConstraint(condition=Q(amount_minor__gt=0), name="attempt_amount_positive"),
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"), name="attempt_currency_iso"),
        ]

    def __str__(self) -> str:
        return f"{self.gateway} attempt {self.id} ({self.status})"


class PaymentStatus(models.TextChoices):
    APPLIED = "applied", "Applied"
    """Counts toward the invoice's amount paid."""
    HELD = "held", "Held for staff"
    """Money was taken but does not count: see ``held_reason``; billing staff decide."""


class HeldReason(models.TextChoices):
    CURRENCY_MISMATCH = "currency_mismatch", "Currency differs from the invoice's"
    OVERPAYMENT = "overpayment", "More than the amount due"
    AMOUNT_MISMATCH = "amount_mismatch", "Not the amount the payment was started for (or, unstarted, the amount due)"
    INVOICE_NOT_PAYABLE = "invoice_not_payable", "The invoice is paid, void or a draft"
    RISK_REVIEW = "risk_review", "The fraud rules ask staff to review it (gateways/risk.py)"
    RISK_BLOCKED = "risk_blocked", "The fraud rules blocked it: refunded automatically"


class Payment(models.Model):
    """Money a gateway took for an invoice: one row per gateway transaction, ever.

    Card facts are the gateway's answers about the card (for the fraud rules), never card
    data: no number, no expiry, no CVC.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="payments")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    attempt = models.ForeignKey(
        PaymentAttempt, on_delete=models.PROTECT, null=True, blank=True, related_name="payments"
    )
    gateway = models.CharField(max_length=20, choices=GATEWAY_CHOICES)
    method = models.CharField(max_length=20, choices=METHOD_CHOICES)
    transaction_id = models.CharField(max_length=255, help_text="The gateway's id (Stripe: PaymentIntent)")
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=PaymentStatus.choices)
    held_reason = models.CharField(max_length=32, choices=HeldReason.choices, blank=True)
    card_brand = models.CharField(max_length=32, blank=True)
    card_country = models.CharField(max_length=2, blank=True)
    cvc_check = models.CharField(max_length=32, blank=True)
    address_postal_code_check = models.CharField(max_length=32, blank=True)
    address_line1_check = models.CharField(max_length=32, blank=True)
    three_d_secure_result = models.CharField(max_length=32, blank=True)
    recorded_by = models.CharField(max_length=64, help_text="What settled it: webhook, return page, reconciliation")
    risk_assessment_id = models.UUIDField(
        null=True, blank=True, help_text="The fraud rules' assessment of the payment (fraud app; no foreign key)"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True, help_text="When staff dealt with a held payment")
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    objects = PrincipalScopedManager()

    class Meta:
        ordering = ["-created_at"]
        permissions = [
            ("resolve_held_payment", "Can mark a held payment as dealt with"),
            ("review_payment", "Can approve or reject a payment held for fraud review"),
        ]
        indexes = [models.Index(fields=["invoice", "status"], name="payment_invoice_status")]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "transaction_id"], name="payment_unique_transaction"),
            models.CheckConstraint(condition=Q(amount_minor__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"), name="payment_currency_iso"),
            models.CheckConstraint(condition=Q(status__in=PaymentStatus.values), name="payment_status_valid"),
            models.CheckConstraint(
                condition=(Q(status="applied") & Q(held_reason="")) | (Q(status="held") & ~Q(held_reason="")),
                name="payment_held_has_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.gateway} {self.transaction_id}"


class WebhookEventStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    PROCESSED = "processed", "Processed"
    IGNORED = "ignored", "Ignored (no effect)"
    FAILED = "failed", "Failed"


class WebhookEvent(models.Model):
    """A verified webhook delivery, stored raw and once (unique gateway + event id).

    The body is encrypted at rest (it may carry a customer's name and e-mail address). The
    worker records the outcome of every processing attempt here.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    gateway = models.CharField(max_length=20, choices=GATEWAY_CHOICES)
    event_id = models.CharField(max_length=255)
    event_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=255, blank=True)
    body = EncryptedTextField(help_text="The raw delivery, as signed")
    signed_at = models.DateTimeField(null=True, blank=True, help_text="The signature's timestamp")
    received_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=16, choices=WebhookEventStatus.choices, default=WebhookEventStatus.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    objects = PrincipalScopedManager()

    class Meta:
        ordering = ["-received_at"]
        indexes = [models.Index(fields=["status", "received_at"], name="webhookevent_status_received")]
        permissions = [("reprocess_webhookevent", "Can re-process a webhook event")]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "event_id"], name="webhookevent_unique_event"),
            models.CheckConstraint(condition=Q(status__in=WebhookEventStatus.values), name="webhookevent_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.gateway} {self.event_type} {self.event_id}"


class RefundStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    """Reserved: asked of the gateway (or about to be); counts against what may be refunded."""
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    """The gateway refused or cancelled it: the money never left and the amount is free again."""


class RefundOrigin(models.TextChoices):
    STAFF = "staff", "Asked for by staff"
    GATEWAY = "gateway", "Made at the gateway (dashboard), learnt by webhook"
    AUTOMATIC = "automatic", "Made by the system: blocked or rejected by the fraud review"


class Refund(models.Model):
    """Money given back from one payment: at most what it paid less what was already
    refunded, counting pending refunds (``gateways.services.refunds``). A succeeded refund
    of an applied payment issues a credit note; one of a held payment (money that never
    counted) returns it and needs none.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="refunds")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    gateway = models.CharField(max_length=20, choices=GATEWAY_CHOICES)
    gateway_refund_id = models.CharField(max_length=255, blank=True, help_text="Empty until the gateway answers")
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=RefundStatus.choices, default=RefundStatus.PENDING)
    origin = models.CharField(max_length=16, choices=RefundOrigin.choices)
    reason = models.CharField(max_length=500, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    gateway_status = models.CharField(max_length=64, blank=True)
    failure_reason = models.CharField(max_length=255, blank=True)
    credit_note = models.OneToOneField(
        CreditNote, on_delete=models.PROTECT, null=True, blank=True, related_name="refund"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    objects = PrincipalScopedManager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["payment", "status"], name="refund_payment_status"),
            models.Index(fields=["status", "created_at"], name="refund_status_created"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["gateway", "gateway_refund_id"],
                condition=~Q(gateway_refund_id=""),
                name="refund_unique_gateway_refund",
            ),
            models.CheckConstraint(condition=Q(amount_minor__gt=0), name="refund_amount_positive"),
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"), name="refund_currency_iso"),
            models.CheckConstraint(condition=Q(status__in=RefundStatus.values), name="refund_status_valid"),
            models.CheckConstraint(condition=Q(origin__in=RefundOrigin.values), name="refund_origin_valid"),
        ]

    def __str__(self) -> str:
        return f"refund {self.gateway_refund_id or self.id} ({self.status})"


class DisputeStatus(models.TextChoices):
    OPEN = "open", "Open"
    WON = "won", "Won"
    LOST = "lost", "Lost"


class Dispute(models.Model):
    """A chargeback, PayPal dispute or reversal of a payment: once per gateway dispute."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="disputes")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="disputes")
    gateway = models.CharField(max_length=20, choices=GATEWAY_CHOICES)
    gateway_dispute_id = models.CharField(max_length=255)
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=DisputeStatus.choices, default=DisputeStatus.OPEN)
    reason = models.CharField(max_length=255, blank=True)
    gateway_status = models.CharField(max_length=64, blank=True)
    evidence_due_by = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    objects = PrincipalScopedManager()

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "gateway_dispute_id"], name="dispute_unique_gateway_dispute"),
            models.CheckConstraint(condition=Q(amount_minor__gte=0), name="dispute_amount_non_negative"),
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"), name="dispute_currency_iso"),
            models.CheckConstraint(condition=Q(status__in=DisputeStatus.values), name="dispute_status_valid"),
        ]

    def __str__(self) -> str:
        return f"dispute {self.gateway_dispute_id} ({self.status})"


class FraudWarning(models.Model):
    """An early fraud warning about a recorded payment, kept for the fraud rules and staff."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="fraud_warnings")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="fraud_warnings")
    gateway = models.CharField(max_length=20, choices=GATEWAY_CHOICES)
    gateway_warning_id = models.CharField(max_length=255)
    fraud_type = models.CharField(max_length=64, blank=True)
    actionable = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PrincipalScopedManager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "gateway_warning_id"], name="fraudwarning_unique_warning"),
        ]

    def __str__(self) -> str:
        return f"fraud warning {self.gateway_warning_id}"


class PaypalCertificate(models.Model):
    """A PayPal webhook signing certificate (PEM), by the ``PAYPAL-CERT-URL`` that names it:
    fetched from ``paypal.com`` on first use, or seeded by ``manage.py paypal_certificate_seed``
    (air-gapped installs, pinning, tests). Public data: no row-level security needed beyond
    staff/system scope."""

    url = models.CharField(max_length=500, primary_key=True)
    pem = models.TextField()
    not_after = models.DateTimeField()
    source = models.CharField(max_length=16, help_text="fetched or seeded")
    stored_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.url


class BankStatementImport(models.Model):
    """One uploaded bank statement file (CSV), by staff. ``lines_new`` counts the credit
    lines stored by this import (a line already stored by an earlier import is skipped);
    ``lines_matched`` those of them recorded as payments on their own."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    file_name = models.CharField(max_length=255)
    file_sha256 = models.CharField(max_length=64)
    layout = models.CharField(max_length=32, help_text="The column layout it was read as")
    imported_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    imported_at = models.DateTimeField(auto_now_add=True)
    lines_total = models.PositiveIntegerField(default=0)
    lines_new = models.PositiveIntegerField(default=0)
    lines_matched = models.PositiveIntegerField(default=0)
    debits_skipped = models.PositiveIntegerField(default=0, help_text="Debit and zero lines: not money received")

    objects = PrincipalScopedManager()

    class Meta:
        ordering = ["-imported_at"]

    def __str__(self) -> str:
        return f"{self.file_name} ({self.imported_at:%Y-%m-%d})"


class BankStatementLineStatus(models.TextChoices):
    MATCHED = "matched", "Matched and recorded"
    UNMATCHED = "unmatched", "No reference found"
    MISTYPED = "mistyped", "Reference fails its check digits"
    AMBIGUOUS = "ambiguous", "More than one reference"
    UNKNOWN_INVOICE = "unknown_invoice", "Reference of no invoice here"
    DUPLICATE = "duplicate", "Possibly recorded already"
    """Matched an invoice, but a transfer of the same amount for it was recorded by hand
    (or from another statement) within days: staff decide, nothing was recorded."""
    RESOLVED = "resolved", "Resolved by staff"
    IGNORED = "ignored", "Ignored by staff"
    RECORDED = "recorded", "Recorded by staff by hand"
    """A transfer staff recorded in the admin: no statement (yet) showed it."""


BANK_LINE_OPEN_STATUSES = (
    BankStatementLineStatus.UNMATCHED,
    BankStatementLineStatus.MISTYPED,
    BankStatementLineStatus.AMBIGUOUS,
    BankStatementLineStatus.UNKNOWN_INVOICE,
    BankStatementLineStatus.DUPLICATE,
)
"""The lines waiting for staff: resolve them to an invoice, or ignore them."""


class BankStatementLine(models.Model):
    """One bank credit, stored once ever (``fingerprint``): a credit line of an imported
    statement (a re-import of the same statement records nothing new), or a transfer staff
    recorded by hand (no ``statement``; ``fingerprint`` from its date, amount and bank
    reference). Lines that did not match are staff's to resolve (``note`` says why); a
    recorded one links the payment it became (``gateways.services.bank_transfers``)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    statement = models.ForeignKey(
        BankStatementImport, on_delete=models.PROTECT, null=True, blank=True, related_name="lines"
    )
    fingerprint = models.CharField(max_length=64, unique=True)
    booked_on = models.DateField()
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    description = EncryptedTextField(help_text="The bank's narrative (names a payer: encrypted)")
    bank_reference = models.CharField(max_length=255, blank=True)
    payment_reference = models.CharField(max_length=64, blank=True, help_text="The reference found in it")
    status = models.CharField(max_length=16, choices=BankStatementLineStatus.choices)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=500, blank=True, help_text="Why it waits for staff, or what staff decided")

    objects = PrincipalScopedManager()

    class Meta:
        ordering = ["booked_on", "id"]
        indexes = [models.Index(fields=["status"], name="bankline_status")]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=BankStatementLineStatus.values), name="bankline_status_valid"
            ),
            models.CheckConstraint(condition=Q(amount_minor__gt=0), name="bankline_amount_positive"),
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"), name="bankline_currency_iso"),
            models.CheckConstraint(
                condition=(Q(statement__isnull=True) & Q(status="recorded"))
                | (Q(statement__isnull=False) & ~Q(status="recorded")),
                name="bankline_recorded_by_hand_has_no_statement",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.booked_on} {self.amount_minor} {self.status}"


class DailySummary(models.Model):
    """The daily reconciliation summary of one gateway: payments recorded here vs. reported
    by the gateway over one day; ``differences`` lists what staff must look at."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    gateway = models.CharField(max_length=20, choices=GATEWAY_CHOICES)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    recorded_count = models.PositiveIntegerField()
    recorded_minor = models.JSONField(default=dict, help_text="Per currency: sum of minor units")
    reported_count = models.PositiveIntegerField(null=True, blank=True, help_text="Null: the gateway cannot report")
    reported_minor = models.JSONField(default=dict)
    differences = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PrincipalScopedManager()

    class Meta:
        ordering = ["-period_start", "gateway"]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "period_start"], name="dailysummary_unique_period"),
        ]

    def __str__(self) -> str:
        return f"{self.gateway} {self.period_start:%Y-%m-%d}"

    @property
    def has_differences(self) -> bool:
        return bool(self.differences)
