"""Row-level security for customer tables (docs/row-level-security.md).

``paymenter_rls_customer_visible(customer)`` is the single predicate every customer
policy uses: staff/system scope sees all rows, customer scope only the customers listed
in ``paymenter.customer_ids``, and no scope nothing at all (fail closed).
"""

from django.db import migrations

from paymenter.rls_sql import protect

FUNCTIONS = """
CREATE FUNCTION paymenter_rls_customer_visible(customer uuid) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT CASE current_setting('paymenter.scope', true)
    WHEN 'staff' THEN true
    WHEN 'system' THEN true
    WHEN 'customer' THEN coalesce(
      customer = ANY (string_to_array(nullif(current_setting('paymenter.customer_ids', true), ''), ',')::uuid[]),
      false)
    ELSE false
  END
$$;

CREATE FUNCTION paymenter_rls_user_is(account bigint) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT coalesce(account = nullif(current_setting('paymenter.user_id', true), '')::bigint, false)
$$;
"""

DROP_FUNCTIONS = """
DROP FUNCTION paymenter_rls_user_is(bigint);
DROP FUNCTION paymenter_rls_customer_visible(uuid);
"""


CUSTOMER = protect("billing_customer", "paymenter_rls_customer_visible(id)")
# A user may read their own memberships before any customer scope exists (to build it).
MEMBERSHIP = protect(
    "billing_customermembership",
    "paymenter_rls_customer_visible(customer_id) OR paymenter_rls_user_is(user_id)",
    "paymenter_rls_customer_visible(customer_id)",
)
OBJECT_PERMISSION = protect(
    "billing_customeruserobjectpermission",
    "paymenter_rls_customer_visible(customer_id) OR paymenter_rls_user_is(user_id)",
    "paymenter_rls_customer_visible(customer_id)",
)


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [
        migrations.RunSQL(FUNCTIONS, DROP_FUNCTIONS),
        migrations.RunSQL(CUSTOMER[0], CUSTOMER[1]),
        migrations.RunSQL(MEMBERSHIP[0], MEMBERSHIP[1]),
        migrations.RunSQL(OBJECT_PERMISSION[0], OBJECT_PERMISSION[1]),
    ]
