"""Invoices: row-level security, and triggers that make issued invoices immutable.

Once an invoice leaves ``draft`` nothing that defines what is owed may change (number,
customer, currency, dates, amounts, seller details, checksum), it can never be deleted,
and its lines can be neither changed, removed nor added. Status and payment/refund
progress still move forward through the services. ``buyer_details`` may be rewritten
only because key rotation re-encrypts it (its plain text does not change).
"""

from django.db import migrations

RLS = """
ALTER TABLE invoices_invoice ENABLE ROW LEVEL SECURITY;
ALTER TABLE invoices_invoice FORCE ROW LEVEL SECURITY;
CREATE POLICY customer_isolation ON invoices_invoice
  USING (paymenter_rls_customer_visible(customer_id))
  WITH CHECK (paymenter_rls_customer_visible(customer_id));
ALTER TABLE invoices_invoiceline ENABLE ROW LEVEL SECURITY;
ALTER TABLE invoices_invoiceline FORCE ROW LEVEL SECURITY;
CREATE POLICY customer_isolation ON invoices_invoiceline
  USING (paymenter_rls_customer_visible(customer_id))
  WITH CHECK (paymenter_rls_customer_visible(customer_id));
"""

NO_RLS = """
DROP POLICY customer_isolation ON invoices_invoiceline;
ALTER TABLE invoices_invoiceline NO FORCE ROW LEVEL SECURITY;
ALTER TABLE invoices_invoiceline DISABLE ROW LEVEL SECURITY;
DROP POLICY customer_isolation ON invoices_invoice;
ALTER TABLE invoices_invoice NO FORCE ROW LEVEL SECURITY;
ALTER TABLE invoices_invoice DISABLE ROW LEVEL SECURITY;
"""

TRIGGERS = """
CREATE FUNCTION invoices_guard_issued_invoice() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF OLD.status <> 'draft' THEN
      RAISE EXCEPTION 'issued invoice % cannot be deleted; void it instead', OLD.number
        USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN OLD;
  END IF;
  IF OLD.status <> 'draft' AND (
       NEW.number IS DISTINCT FROM OLD.number
    OR NEW.customer_id IS DISTINCT FROM OLD.customer_id
    OR NEW.currency IS DISTINCT FROM OLD.currency
    OR NEW.issue_date IS DISTINCT FROM OLD.issue_date
    OR NEW.due_date IS DISTINCT FROM OLD.due_date
    OR NEW.is_tax_invoice IS DISTINCT FROM OLD.is_tax_invoice
    OR NEW.seller_details IS DISTINCT FROM OLD.seller_details
    OR NEW.buyer_country IS DISTINCT FROM OLD.buyer_country
    OR NEW.subtotal_minor IS DISTINCT FROM OLD.subtotal_minor
    OR NEW.tax_minor IS DISTINCT FROM OLD.tax_minor
    OR NEW.total_minor IS DISTINCT FROM OLD.total_minor
    OR NEW.checksum IS DISTINCT FROM OLD.checksum
    OR NEW.checksum_key_id IS DISTINCT FROM OLD.checksum_key_id
    OR NEW.issued_at IS DISTINCT FROM OLD.issued_at
    OR NEW.status = 'draft'
  ) THEN
    RAISE EXCEPTION 'issued invoice % is immutable', OLD.number
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  RETURN NEW;
END $$;

CREATE TRIGGER invoices_guard_issued_invoice
  BEFORE UPDATE OR DELETE ON invoices_invoice
  FOR EACH ROW EXECUTE FUNCTION invoices_guard_issued_invoice();

CREATE FUNCTION invoices_guard_issued_line() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  parent_status text;
BEGIN
  SELECT status INTO parent_status FROM invoices_invoice
    WHERE id = (CASE WHEN TG_OP = 'INSERT' THEN NEW.invoice_id ELSE OLD.invoice_id END);
  IF parent_status IS DISTINCT FROM 'draft' THEN
    RAISE EXCEPTION 'lines of issued invoices are immutable'
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
  RETURN NEW;
END $$;

CREATE TRIGGER invoices_guard_issued_line
  BEFORE INSERT OR UPDATE OR DELETE ON invoices_invoiceline
  FOR EACH ROW EXECUTE FUNCTION invoices_guard_issued_line();
"""

NO_TRIGGERS = """
DROP TRIGGER invoices_guard_issued_line ON invoices_invoiceline;
DROP FUNCTION invoices_guard_issued_line();
DROP TRIGGER invoices_guard_issued_invoice ON invoices_invoice;
DROP FUNCTION invoices_guard_issued_invoice();
"""


class Migration(migrations.Migration):
    dependencies = [("invoices", "0001_initial"), ("billing", "0002_row_level_security")]

    operations = [
        migrations.RunSQL(RLS, NO_RLS),
        migrations.RunSQL(TRIGGERS, NO_TRIGGERS),
    ]
