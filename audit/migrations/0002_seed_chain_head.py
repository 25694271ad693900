"""The single chain-head row every append locks; it starts at the genesis hash."""

from django.db import migrations

GENESIS_HASH = "0" * 64

class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [
        migrations.RunSQL(
            sql=[
                (
                    "INSERT INTO audit_auditchainhead (id, last_sequence, last_hash) VALUES (1, 0, %s)"
                    " ON CONFLICT (id) DO NOTHING",
                    [GENESIS_HASH],
                )
            ],
            reverse_sql=["DELETE FROM audit_auditchainhead WHERE id = 1"],
        ),
    ]
