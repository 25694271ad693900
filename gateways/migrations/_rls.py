"""Shared by the gateways migrations (the loader skips modules named ``_*``): the SQL that
puts one table under row-level security with one predicate (docs/row-level-security.md)."""


def protect(table: str, predicate: str) -> tuple[str, str]:
    """``(forward, backward)`` SQL: enable and force RLS on ``table``, one policy."""
    forward = f"""
    ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
    ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
    CREATE POLICY customer_isolation ON {table} USING ({predicate}) WITH CHECK ({predicate});
    """
    backward = f"""
    DROP POLICY customer_isolation ON {table};
    ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY;
    ALTER TABLE {table} DISABLE ROW LEVEL SECURITY;
    """
    return forward, backward
