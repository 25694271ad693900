"""Make the audit trail append-only in PostgreSQL itself, and hide it from customer scope.

* Triggers refuse UPDATE, DELETE (per row) and TRUNCATE (per statement) on
  ``audit_auditevent``; on ``audit_auditchainhead`` they refuse DELETE/TRUNCATE and any
  update that does not advance the head by exactly one.
* Privileges: every role except the table owner loses UPDATE, DELETE, TRUNCATE,
  REFERENCES and TRIGGER on the events table (left with SELECT, INSERT) and INSERT,
  DELETE, TRUNCATE, REFERENCES and TRIGGER on the head (left with SELECT, UPDATE). The
  grantees are found in the catalogue, so no role name is hard-coded.
* Row-level security, enabled and forced on the events table: anyone may INSERT (an
  anonymous refusal is audited too); only ``staff`` and ``system`` scope may SELECT; no
  policy allows UPDATE or DELETE at all. The head holds no customer data: no RLS.

The owner (or a superuser) can still disable triggers; the HMAC chain, keyed outside the
database, is what detects that (``manage.py verify_audit_chain``).
"""

from django.db import migrations

EVENTS = "audit_auditevent"
HEAD = "audit_auditchainhead"


def _for_each_non_owner_grantee(table: str, statement: str, *, having: str | None = None) -> str:
    """A DO block running ``statement % grantee`` for every non-owner grantee of ``table``.

    ``having`` limits it to grantees currently holding that privilege.
    """
    privilege_filter = f" AND a.privilege_type = '{having}'" if having else ""
    return f"""
DO $$
DECLARE
    grantee_oid oid;
BEGIN
    FOR grantee_oid IN
        SELECT DISTINCT a.grantee
        FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
        WHERE c.oid = '{table}'::regclass AND a.grantee <> c.relowner{privilege_filter}
    LOOP
        EXECUTE format(
            '{statement}',
            CASE WHEN grantee_oid = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(grantee_oid)) END
        );
    END LOOP;
END
$$;
"""


TRIGGERS_SQL = f"""
CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING HINT = 'audit rows are never changed or removed; see docs/audit-chain.md';
END
$$;

CREATE FUNCTION audit_chainhead_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id <> OLD.id OR NEW.last_sequence <> OLD.last_sequence + 1 THEN
        RAISE EXCEPTION 'audit chain head may only advance by one (% -> %)',
            OLD.last_sequence, NEW.last_sequence;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER audit_event_refuse_update_delete
    BEFORE UPDATE OR DELETE ON {EVENTS}
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_event_refuse_truncate
    BEFORE TRUNCATE ON {EVENTS}
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

CREATE TRIGGER audit_chainhead_refuse_delete
    BEFORE DELETE ON {HEAD}
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_chainhead_refuse_truncate
    BEFORE TRUNCATE ON {HEAD}
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_chainhead_advance_only
    BEFORE UPDATE ON {HEAD}
    FOR EACH ROW EXECUTE FUNCTION audit_chainhead_guard();
"""

TRIGGERS_REVERSE_SQL = f"""
DROP TRIGGER audit_chainhead_advance_only ON {HEAD};
DROP TRIGGER audit_chainhead_refuse_truncate ON {HEAD};
DROP TRIGGER audit_chainhead_refuse_delete ON {HEAD};
DROP TRIGGER audit_event_refuse_truncate ON {EVENTS};
DROP TRIGGER audit_event_refuse_update_delete ON {EVENTS};
DROP FUNCTION audit_chainhead_guard();
DROP FUNCTION audit_refuse_change();
"""

REVOKE_SQL = _for_each_non_owner_grantee(
    EVENTS, f"REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON TABLE {EVENTS} FROM %s"
) + _for_each_non_owner_grantee(HEAD, f"REVOKE INSERT, DELETE, TRUNCATE, REFERENCES, TRIGGER ON TABLE {HEAD} FROM %s")

# Back to what the schema's default privileges grant: DML for the roles that can write.
REVOKE_REVERSE_SQL = _for_each_non_owner_grantee(
    EVENTS, f"GRANT UPDATE, DELETE ON TABLE {EVENTS} TO %s", having="INSERT"
) + _for_each_non_owner_grantee(HEAD, f"GRANT INSERT, DELETE ON TABLE {HEAD} TO %s", having="UPDATE")

RLS_SQL = f"""
ALTER TABLE {EVENTS} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {EVENTS} FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_event_insert_any ON {EVENTS} FOR INSERT WITH CHECK (true);
CREATE POLICY audit_event_select_staff_system ON {EVENTS} FOR SELECT
    USING (current_setting('paymenter.scope', true) IN ('staff', 'system'));
"""

RLS_REVERSE_SQL = f"""
DROP POLICY audit_event_select_staff_system ON {EVENTS};
DROP POLICY audit_event_insert_any ON {EVENTS};
ALTER TABLE {EVENTS} NO FORCE ROW LEVEL SECURITY;
ALTER TABLE {EVENTS} DISABLE ROW LEVEL SECURITY;
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_seed_chain_head")]

    operations = [
        migrations.RunSQL(sql=TRIGGERS_SQL, reverse_sql=TRIGGERS_REVERSE_SQL),
        migrations.RunSQL(sql=REVOKE_SQL, reverse_sql=REVOKE_REVERSE_SQL),
        migrations.RunSQL(sql=RLS_SQL, reverse_sql=RLS_REVERSE_SQL),
    ]
