"""The fraud rules' effects on the ledger: the assessment kept on each attempt and payment
(the ``fraud`` app's row, by id: no foreign key between sibling apps), the held reason
``risk_blocked``, and the right to approve or reject a payment held for review (billing and
admin; support only views the queue). Row-level security is unchanged: no new table."""

from django.db import migrations, models

from billing.migrations._staff_groups import grant_operation

GRANTS = {"admin": [("gateways", "review_payment")], "billing": [("gateways", "review_payment")]}


class Migration(migrations.Migration):
    dependencies = [
        ("gateways", "0005_bank_transfer_lines"),
        ("billing", "0006_staff_groups_products"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AddField(
            model_name="paymentattempt",
            name="risk_assessment_id",
            field=models.UUIDField(
                blank=True,
                help_text="The fraud rules' assessment of its start (fraud app; no foreign key)",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="payment",
            name="risk_assessment_id",
            field=models.UUIDField(
                blank=True,
                help_text="The fraud rules' assessment of the payment (fraud app; no foreign key)",
                null=True,
            ),
        ),
        migrations.AlterField(
            model_name="payment",
            name="held_reason",
            field=models.CharField(
                blank=True,
                choices=[
                    ("currency_mismatch", "Currency differs from the invoice's"),
                    ("overpayment", "More than the amount due"),
                    (
                        "amount_mismatch",
                        "Not the amount the payment was started for (or, unstarted, the amount due)",
                    ),
                    ("invoice_not_payable", "The invoice is paid, void or a draft"),
                    ("risk_review", "The fraud rules ask staff to review it (gateways/risk.py)"),
                    ("risk_blocked", "The fraud rules blocked it: refunded automatically"),
                ],
                max_length=32,
            ),
        ),
        migrations.AlterField(
            model_name="refund",
            name="origin",
            field=models.CharField(
                choices=[
                    ("staff", "Asked for by staff"),
                    ("gateway", "Made at the gateway (dashboard), learnt by webhook"),
                    ("automatic", "Made by the system: blocked or rejected by the fraud review"),
                ],
                max_length=16,
            ),
        ),
        migrations.RemoveConstraint(model_name="refund", name="refund_origin_valid"),
        migrations.AddConstraint(
            model_name="refund",
            constraint=models.CheckConstraint(
                condition=models.Q(("origin__in", ["staff", "gateway", "automatic"])), name="refund_origin_valid"
            ),
        ),
        migrations.AlterModelOptions(
            name="payment",
            options={
                "ordering": ["-created_at"],
                "permissions": [
                    ("resolve_held_payment", "Can mark a held payment as dealt with"),
                    ("review_payment", "Can approve or reject a payment held for fraud review"),
                ],
            },
        ),
        grant_operation(GRANTS),
    ]
