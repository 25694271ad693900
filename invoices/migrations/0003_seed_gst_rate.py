"""Australian GST at 10% since 1 July 2000 (A New Tax System (Goods and Services Tax) Act 1999)."""

import datetime
from decimal import Decimal

from django.db import migrations


def seed(apps, schema_editor):  # type: ignore[no-untyped-def]
    TaxRate = apps.get_model("invoices", "TaxRate")
    TaxRate.objects.using(schema_editor.connection.alias).get_or_create(
        code="GST",
        country="AU",
        effective_from=datetime.date(2000, 7, 1),
        defaults={"rate": Decimal("0.1000"), "description": "GST 10%"},
    )


def unseed(apps, schema_editor):  # type: ignore[no-untyped-def]
    TaxRate = apps.get_model("invoices", "TaxRate")
    TaxRate.objects.using(schema_editor.connection.alias).filter(
        code="GST", country="AU", effective_from=datetime.date(2000, 7, 1)
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("invoices", "0002_row_level_security_and_immutability")]

    operations = [migrations.RunPython(seed, unseed)]
