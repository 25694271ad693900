"""Credit notes: row-level security like every customer table, triggers that make them
immutable (never changed, never deleted; lines only inserted), and the staff groups' view
rights (support too: reading a credit note is not a payment action)."""

from django.db import migrations

from billing.migrations._staff_groups import grant_operation

TABLES = ["invoices_creditnote", "invoices_creditnoteline"]

RLS = "".join(
    f"""
ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
CREATE POLICY customer_isolation ON {table}
  USING (paymenter_rls_customer_visible(customer_id))
  WITH CHECK (paymenter_rls_customer_visible(customer_id));
"""
    for table in TABLES
)

NO_RLS = "".join(
    f"""
DROP POLICY customer_isolation ON {table};
ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY;
ALTER TABLE {table} DISABLE ROW LEVEL SECURITY;
"""
    for table in TABLES
)

# buyer_details may be rewritten only because key rotation re-encrypts it (its plain text
# does not change), exactly as for invoices.
TRIGGERS = """
CREATE FUNCTION invoices_guard_credit_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'credit note % cannot be deleted', OLD.number
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  IF (to_jsonb(NEW) - 'buyer_details') IS DISTINCT FROM (to_jsonb(OLD) - 'buyer_details') THEN
    RAISE EXCEPTION 'credit note % is immutable', OLD.number
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  RETURN NEW;
END $$;

CREATE TRIGGER invoices_guard_credit_note
  BEFORE UPDATE OR DELETE ON invoices_creditnote
  FOR EACH ROW EXECUTE FUNCTION invoices_guard_credit_note();

CREATE FUNCTION invoices_guard_credit_note_line() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'credit note lines are immutable'
    USING ERRCODE = 'integrity_constraint_violation';
END $$;

CREATE TRIGGER invoices_guard_credit_note_line
  BEFORE UPDATE OR DELETE ON invoices_creditnoteline
  FOR EACH ROW EXECUTE FUNCTION invoices_guard_credit_note_line();
"""

NO_TRIGGERS = """
DROP TRIGGER invoices_guard_credit_note_line ON invoices_creditnoteline;
DROP FUNCTION invoices_guard_credit_note_line();
DROP TRIGGER invoices_guard_credit_note ON invoices_creditnote;
DROP FUNCTION invoices_guard_credit_note();
"""

VIEW = [("invoices", "view_creditnote"), ("invoices", "view_creditnoteline")]
GRANTS = {"admin": VIEW, "billing": VIEW, "support": VIEW}


class Migration(migrations.Migration):
    dependencies = [
        ("invoices", "0007_credit_notes_and_disputed_status"),
        ("billing", "0006_staff_groups_products"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunSQL(RLS, NO_RLS),
        migrations.RunSQL(TRIGGERS, NO_TRIGGERS),
        grant_operation(GRANTS),
    ]
