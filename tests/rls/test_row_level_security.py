"""PostgreSQL row-level security, exercised as the restricted application role."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import Client

from billing.models import Customer
from billing.selectors import customer_get, customer_ids_for_user
from invoices.errors import InvoiceNotFoundError
from invoices.models import Invoice
from invoices.selectors import invoice_get, invoices_for_principal
from paymenter import dbroles, rls
from paymenter.principals import CustomerPrincipal, StaffPrincipal, SystemPrincipal
from tests.factories import make_customer, make_invoice, make_member

CUSTOMER_TABLES = [
    "billing_customer",
    "billing_customermembership",
    "billing_customeruserobjectpermission",
    "invoices_invoice",
    "invoices_invoiceline",
    "invoices_invoicechecksummismatch",
    "paymenter_idempotencyrecord",
]


def _raw_count(table: str, where: str = "", params: list[Any] | None = None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table} {where}", params or [])
        return int(cursor.fetchone()[0])


@pytest.fixture
def two_customers(db: None) -> tuple[Customer, Customer]:
    with rls.acting_as(SystemPrincipal(label="test:setup")):
        a = make_customer(billing_country="AU")
        b = make_customer(billing_country="US")
        make_invoice(a)
        make_invoice(b)
        make_invoice(b, issue=False)
    return a, b


def _as_customer(customer: Customer) -> CustomerPrincipal:
    return CustomerPrincipal(user_id=10_000, customer_ids=frozenset({customer.id}))


def test_customer_scope_reads_only_its_own_rows_with_raw_sql(two_customers: tuple[Customer, Customer]) -> None:
    a, b = two_customers
    with rls.acting_as(_as_customer(a)):
        assert _raw_count("billing_customer") == 1
        assert _raw_count("billing_customer", "WHERE id = %s", [b.id]) == 0
        assert _raw_count("invoices_invoice") == 1
        assert _raw_count("invoices_invoice", "WHERE customer_id = %s", [b.id]) == 0
        assert _raw_count("invoices_invoiceline", "WHERE customer_id = %s", [b.id]) == 0
        assert _raw_count("invoices_invoiceline", "WHERE customer_id = %s", [a.id]) == 2


def test_customer_scope_cannot_change_or_delete_other_customers_rows(
    two_customers: tuple[Customer, Customer],
) -> None:
    a, b = two_customers
    with rls.acting_as(_as_customer(a)), connection.cursor() as cursor:
        cursor.execute("UPDATE billing_customer SET billing_country = 'NZ' WHERE id = %s", [b.id])
        assert cursor.rowcount == 0
        cursor.execute("DELETE FROM invoices_invoice WHERE customer_id = %s AND status = 'draft'", [b.id])
        assert cursor.rowcount == 0
    with rls.acting_as(SystemPrincipal(label="test:check")):
        assert Customer.objects.get(id=b.id).billing_country == "US"
        assert Invoice.objects.filter(customer_id=b.id, status="draft").count() == 1


def test_customer_scope_cannot_insert_rows_for_another_customer(two_customers: tuple[Customer, Customer]) -> None:
    a, b = two_customers
    with (
        rls.acting_as(_as_customer(a)),
        pytest.raises(DatabaseError, match="row-level security"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "INSERT INTO invoices_invoice (id, customer_id, status, currency, is_tax_invoice,"
            " seller_details, buyer_country, subtotal_minor, tax_minor, total_minor,"
            " amount_paid_minor, amount_refunded_minor, checksum, checksum_key_id, void_reason,"
            " created_at) VALUES (%s, %s, 'draft', 'AUD', false, '{}', '', 0, 0, 0, 0, 0, '', '',"
            " '', now())",
            [uuid.uuid4(), b.id],
        )
    with rls.acting_as(SystemPrincipal(label="test:check")):
        assert Invoice.objects.filter(customer_id=b.id).count() == 2


def test_no_scope_sees_no_rows_at_all(two_customers: tuple[Customer, Customer]) -> None:
    assert rls.current_principal() is None
    for table in CUSTOMER_TABLES:
        assert _raw_count(table) == 0, table
    with connection.cursor() as cursor:
        cursor.execute("UPDATE billing_customer SET billing_country = 'NZ'")
        assert cursor.rowcount == 0


def test_unscoped_orm_access_raises_loudly(two_customers: tuple[Customer, Customer]) -> None:
    for model in (Customer, Invoice):
        with pytest.raises(rls.UnscopedAccessError):
            model.objects.count()


def test_staff_and_system_scopes_see_every_customer(two_customers: tuple[Customer, Customer]) -> None:
    a, b = two_customers
    for principal in (StaffPrincipal(user_id=1), SystemPrincipal(label="test")):
        with rls.acting_as(principal):
            assert _raw_count("billing_customer", "WHERE id IN (%s, %s)", [a.id, b.id]) == 2


def test_selectors_scope_a_customer_principal_in_the_orm_too(two_customers: tuple[Customer, Customer]) -> None:
    a, b = two_customers
    with rls.acting_as(SystemPrincipal(label="test:setup")):
        member = make_member(a)
        b_invoice = Invoice.objects.filter(customer=b).first()
    assert b_invoice is not None
    principal = CustomerPrincipal(user_id=member.pk, customer_ids=customer_ids_for_user(user_id=member.pk))
    assert principal.customer_ids == frozenset({a.id})
    with rls.acting_as(principal):
        assert [inv.customer_id for inv in invoices_for_principal(principal=principal)] == [a.id]
        with pytest.raises(InvoiceNotFoundError):
            invoice_get(principal=principal, invoice_id=b_invoice.id)
        assert customer_get(principal=principal, customer_id=a.id).id == a.id


def test_selectors_do_not_trust_a_principal_wider_than_the_database_scope(
    two_customers: tuple[Customer, Customer],
) -> None:
    """A principal naming customer B in Python still sees nothing of B unless the
    database scope allows it: here we open the ORM scope but keep the DB scope on A."""
    a, b = two_customers
    wide = CustomerPrincipal(user_id=1, customer_ids=frozenset({a.id, b.id}))
    with rls.acting_as(_as_customer(a)):
        assert set(invoices_for_principal(principal=wide).values_list("customer_id", flat=True)) <= {a.id}


def test_every_customer_data_table_has_forced_rls_and_a_policy(db: None) -> None:
    """A new table with a customer_id column (or a listed one) must ship with RLS."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                   (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind = 'r'
              AND (c.relname = ANY(%s) OR EXISTS (
                    SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                    AND a.attname = 'customer_id' AND NOT a.attisdropped))
            """,
            [[*CUSTOMER_TABLES, "audit_auditevent"]],
        )
        rows = cursor.fetchall()
    found = {name for name, *_ in rows}
    assert set(CUSTOMER_TABLES) | {"audit_auditevent"} <= found
    unprotected = [
        (name, rls_on, forced, policies)
        for name, rls_on, forced, policies in rows
        if not (rls_on and forced and policies > 0)
    ]
    assert unprotected == []


def test_application_role_is_restricted(db: None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_user, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb"
            " FROM pg_roles WHERE rolname = current_user"
        )
        user, superuser, bypassrls, createrole, createdb = cursor.fetchone()
        cursor.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) = current_user"
        )
        owned = cursor.fetchone()[0]
    assert user == dbroles.APP_ROLE
    assert (superuser, bypassrls, createrole, createdb, owned) == (False, False, False, False, 0)


def test_scope_set_inside_a_transaction_is_cleared_when_the_block_ends(
    two_customers: tuple[Customer, Customer],
) -> None:
    a, _ = two_customers
    with rls.acting_as(_as_customer(a)):
        assert _raw_count("billing_customer") == 1
    assert _raw_count("billing_customer") == 0


@pytest.mark.committed
def test_scope_does_not_leak_to_the_next_request_on_a_reused_connection(committed_db: None) -> None:
    with rls.acting_as(SystemPrincipal(label="test:setup")):
        customer = make_customer()
        member = make_member(customer)
    client = Client()
    client.force_login(member)
    response = client.get("/healthz")
    assert response.status_code == 200
    # the same thread's connection served that request (customer scope); now, unscoped:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('paymenter.scope', true), current_setting('paymenter.customer_ids', true)"
        )
        assert cursor.fetchone() in {("", ""), (None, None)}
    assert _raw_count("billing_customer", "WHERE id = %s", [customer.id]) == 0
    with rls.acting_as(_as_customer(customer)):
        assert Customer.objects.filter(id=customer.id).count() == 1  # autocommit query, own tiny transaction
    assert _raw_count("billing_customer", "WHERE id = %s", [customer.id]) == 0
