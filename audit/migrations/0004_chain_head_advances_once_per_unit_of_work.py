"""The chain head moves once per batch of events, not once per event.

A unit of work appends its events together (``audit.services._append_to_chain``): one
statement inserts them and moves the head to the last one. The head's trigger therefore
accepts any advance (the new ``last_sequence`` above the old) instead of exactly one step;
it still refuses moving back or standing still, changing the id, DELETE and TRUNCATE.

What the one-step rule added is kept elsewhere: events are only ever inserted by the holder
of the head's row lock, their ``sequence`` is the primary key (no two rows share one), and
``manage.py verify_audit_chain`` recomputes every link, so a head moved past events that do
not exist (a gap) or to a hash no row carries is reported as a break in the chain.
"""

from django.db import migrations

GUARD = """
CREATE OR REPLACE FUNCTION audit_chainhead_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id <> OLD.id OR NEW.last_sequence <= OLD.last_sequence THEN
        RAISE EXCEPTION 'audit chain head may only advance (% -> %)',
            OLD.last_sequence, NEW.last_sequence;
    END IF;
    RETURN NEW;
END
$$;
"""

PREVIOUS_GUARD = """
CREATE OR REPLACE FUNCTION audit_chainhead_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id <> OLD.id OR NEW.last_sequence <> OLD.last_sequence + 1 THEN
        RAISE EXCEPTION 'audit chain head may only advance by one (% -> %)',
            OLD.last_sequence, NEW.last_sequence;
    END IF;
    RETURN NEW;
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_append_only_triggers_grants_rls")]

    operations = [migrations.RunSQL(GUARD, PREVIOUS_GUARD)]
