"""The first detection of each tampered invoice (``InvoiceChecksumMismatch``), one row per
invoice, protected by row-level security like every customer-data table
(docs/row-level-security.md; ``billing/0002``'s ``protect()`` is the same SQL)."""

import uuid

import django.db.models.deletion
from django.db import migrations, models

TABLE = "invoices_invoicechecksummismatch"

RLS = f"""
ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {TABLE} FORCE ROW LEVEL SECURITY;
CREATE POLICY customer_isolation ON {TABLE}
  USING (paymenter_rls_customer_visible(customer_id))
  WITH CHECK (paymenter_rls_customer_visible(customer_id));
"""

NO_RLS = f"""
DROP POLICY customer_isolation ON {TABLE};
ALTER TABLE {TABLE} NO FORCE ROW LEVEL SECURITY;
ALTER TABLE {TABLE} DISABLE ROW LEVEL SECURITY;
"""


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0006_staff_groups_products'),
        ('invoices', '0005_taxcode_gst_free'),
    ]

    operations = [
        migrations.CreateModel(
            name='InvoiceChecksumMismatch',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('detected_at', models.DateTimeField(auto_now_add=True)),
                ('detected_by', models.CharField(help_text='The principal that first found it: actor type:id', max_length=300)),
                ('attempted', models.CharField(help_text='What it was doing: a read, the sweep, void, payment ...', max_length=64)),
                ('checksum_key_id', models.CharField(blank=True, help_text='The key id the invoice names', max_length=32)),
                ('customer', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='billing.customer')),
                ('invoice', models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name='checksum_mismatch', to='invoices.invoice')),
            ],
            options={
                'ordering': ['-detected_at'],
            },
        ),
        migrations.RunSQL(RLS, NO_RLS),
    ]
