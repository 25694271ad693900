"""``o2s_idempotency_claim``: take an ``Idempotency-Key``'s lock and read its record in one
round trip (``o2s.idempotency``).

The function is ``plpgsql`` and ``VOLATILE`` on purpose: under READ COMMITTED each of its
statements takes a fresh snapshot, so the SELECT runs *after* the lock is granted and sees
a record the previous holder committed (a duplicate that arrives as the first request
commits replays it). One SQL statement holding both would read with a snapshot taken
before the lock. A busy key raises SQLSTATE 55P03 (``lock_not_available``): 409
``idempotency_key_in_use``. ``SECURITY INVOKER`` (the default): row-level security shows
the caller only its own API key's records, as before.
"""

from django.db import migrations

FORWARD = """
CREATE FUNCTION o2s_idempotency_claim(p_lock_key text, p_api_key_id uuid, p_key text)
RETURNS SETOF paymenter_idempotencyrecord
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF NOT pg_try_advisory_xact_lock(hashtextextended(p_lock_key, 0)) THEN
    RAISE EXCEPTION 'idempotency key in use' USING ERRCODE = 'lock_not_available';
  END IF;
  RETURN QUERY
    SELECT * FROM paymenter_idempotencyrecord WHERE api_key_id = p_api_key_id AND key = p_key;
END $$;
"""

BACKWARD = "DROP FUNCTION o2s_idempotency_claim(text, uuid, text);"


class Migration(migrations.Migration):
    dependencies = [("o2s", "0002_idempotency_records_row_level_security")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
