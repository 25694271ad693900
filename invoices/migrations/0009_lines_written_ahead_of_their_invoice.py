"""Let the unit of work that creates an invoice write its lines just before the invoice row.

An invoice is now written once, already issued (``invoice_create_priced``): its lines go
first, then the invoice row, and the foreign key (``DEFERRABLE INITIALLY DEFERRED``, as
Django creates every foreign key) is checked at COMMIT. The guard on lines therefore
accepts a line whose invoice does not exist *yet*, and still refuses everything else:

* the invoice exists and is issued: refused, as before (lines of issued invoices are
  immutable);
* the invoice is not visible: in ``staff`` or ``system`` scope every invoice is visible,
  so it does not exist and must be inserted by this transaction, or COMMIT fails on the
  foreign key; in any other scope (a customer's, or none) it might be someone else's
  invoice hidden by row-level security, so the line is refused (fail closed).
"""

from django.db import migrations

GUARD = """
CREATE OR REPLACE FUNCTION invoices_guard_issued_line() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  parent_status text;
BEGIN
  SELECT status INTO parent_status FROM invoices_invoice
    WHERE id = (CASE WHEN TG_OP = 'INSERT' THEN NEW.invoice_id ELSE OLD.invoice_id END);
  IF TG_OP = 'INSERT' AND parent_status IS NULL
     AND current_setting('paymenter.scope', true) IN ('staff', 'system') THEN
    RETURN NEW;  -- written ahead of its new invoice; the deferred foreign key checks it at COMMIT
  END IF;
  IF parent_status IS DISTINCT FROM 'draft' THEN
    RAISE EXCEPTION 'lines of issued invoices are immutable'
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
  RETURN NEW;
END $$;
"""

PREVIOUS_GUARD = """
CREATE OR REPLACE FUNCTION invoices_guard_issued_line() RETURNS trigger LANGUAGE plpgsql AS $$
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
"""


class Migration(migrations.Migration):
    dependencies = [("invoices", "0008_credit_notes_row_level_security_and_immutability")]

    operations = [migrations.RunSQL(GUARD, PREVIOUS_GUARD)]
