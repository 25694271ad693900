"""The fraud rules' tables (docs/fraud.md).

* :class:`RuleConfig` - one row per rule: enabled, and its configuration as JSON, parsed and
  validated by the rule's own config class (``fraud.rules``). Staff-only data, edited by the
  admin group; every change is audited (``fraud.services.rule_config_update``).
* :class:`Assessment` - every assessment the engine made, before a payment started or after
  the gateway reported it: each rule's decision, reason and the inputs it used. A customer
  table under row-level security.
* :class:`CustomerRiskFlag` - a dispute or early fraud warning that puts the customer's next
  payments to review, once per source event, until staff clear it.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from billing.models import Customer
from invoices.models import Invoice
from paymenter.scoping import PrincipalScopedManager


class Stage(models.TextChoices):
    BEFORE_START = "before_start", "Before the payment starts"
    AFTER_REPORT = "after_report", "After the gateway reported it"


class Decision(models.TextChoices):
    """The same words as ``gateways.risk.RiskDecision`` (a sibling app: not imported here)."""

    ALLOW = "allow", "Allow"
    REVIEW = "review", "Review"
    BLOCK = "block", "Block"


class RuleConfig(models.Model):
    name = models.CharField(max_length=32, unique=True)
    enabled = models.BooleanField(default=True)
    config = models.JSONField(default=dict, help_text="The rule's settings (docs/fraud.md)")
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=150, blank=True, help_text="The staff user of the last change")

    class Meta:
        ordering = ["name"]
        verbose_name = "fraud rule"

    def __str__(self) -> str:
        return self.name


class Assessment(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    stage = models.CharField(max_length=16, choices=Stage.choices)
    decision = models.CharField(max_length=8, choices=Decision.choices)
    results = models.JSONField(default=list, help_text="[{rule, decision, reason, inputs}] of every rule that ran")
    reasons = models.JSONField(default=list, help_text="The reasons of the rules that did not allow")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    gateway = models.CharField(max_length=20)
    transaction_id = models.CharField(max_length=255, blank=True, help_text="after_report: the gateway's payment")
    created_at = models.DateTimeField(help_text="The assessment's clock (the velocity window counts on it)")

    objects = PrincipalScopedManager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["customer", "stage", "created_at"], name="fraud_assess_customer_window"),
            models.Index(fields=["source_ip", "stage", "created_at"], name="fraud_assess_source_window"),
        ]

    def __str__(self) -> str:
        return f"{self.stage} {self.decision} ({self.id})"


class CustomerRiskFlag(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=255)
    source_event_id = models.CharField(max_length=64, unique=True, help_text="The domain event that raised it")
    created_at = models.DateTimeField(auto_now_add=True)
    cleared_at = models.DateTimeField(null=True, blank=True)
    cleared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    objects = PrincipalScopedManager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["customer"], condition=Q(cleared_at__isnull=True), name="fraud_riskflag_open"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.reason}"
