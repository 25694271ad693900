"""The cost and the locking of ``POST /api/v1/invoices/`` (issue "Performance: the O2S write
path"; docs/performance.md).

* It runs in at most 12 SQL statements, BEGIN and COMMIT included, whatever the number of
  lines; the invoice reads run in a constant number, whatever the page size.
* Nothing global is locked while a creation does its work: the invoice number and the
  audit chain position are taken at the end, so a second creation does not wait for a
  first one that has not reached that point yet.
* Numbering stays gapless when transactions that took a number roll back while others wait
  for it.

Real concurrency: separate threads, each with its own database connection, on committed
data (``committed_db``), as the restricted application role with row-level security.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from psycopg import _queries

from audit.models import AuditEvent
from billing.models import Customer, Product
from invoices import numbering
from invoices.models import Invoice, InvoiceNumberSequence
from invoices.pricing import seller_today
from paymenter import rls
from tests.factories import make_customer
from tests.o2s.api_helpers import PRINCIPAL, O2SClient, make_api_client, make_product

pytestmark = pytest.mark.committed

URL = "/api/v1/invoices/"
MAX_STATEMENTS = 12  # the issue's budget for one creation, BEGIN and COMMIT included
WAIT_SECONDS = 60  # a bound for a thread that should finish; never reached when the code is right


@pytest.fixture
def o2s(committed_db: None) -> tuple[O2SClient, Customer, Product]:
    with rls.acting_as(PRINCIPAL):
        api = make_api_client(custom_lines=True)
        product = make_product()
        customer = make_customer(billing_country="AU")
    return api, customer, product


def _body(customer: Customer, product: Product, lines: int = 1) -> dict[str, Any]:
    return {
        "customer": str(customer.id),
        "currency": "AUD",
        "lines": [{"product_code": product.code, "quantity": index + 1} for index in range(lines)],
    }


def _create(api: O2SClient, body: dict[str, Any]) -> Any:
    return api.post(URL, body, HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))


def _statements(action: Callable[[], Any]) -> tuple[Any, list[str]]:
    with CaptureQueriesContext(connection) as captured:
        result = action()
    return result, [query["sql"] for query in captured.captured_queries]


# --- statements per request ---------------------------------------------------------------


def test_creating_an_invoice_takes_at_most_twelve_statements_whatever_its_lines(
    o2s: tuple[O2SClient, Customer, Product],
) -> None:
    api, customer, product = o2s
    assert _create(api, _body(customer, product)).status_code == 201  # warm-up: the key's last-used stamp

    one, one_line = _statements(lambda: _create(api, _body(customer, product)))
    many, five_lines = _statements(lambda: _create(api, _body(customer, product, lines=5)))
    custom_body = _body(customer, product)
    custom_body["lines"].append({"description": "Migration work", "unit_amount_minor": 12000, "quantity": 1})
    custom, with_custom_line = _statements(lambda: _create(api, custom_body))

    assert [one.status_code, many.status_code, custom.status_code] == [201, 201, 201]
    assert len(one_line) <= MAX_STATEMENTS, "\n".join(one_line)
    assert len(five_lines) == len(one_line)
    assert len(with_custom_line) == len(one_line)  # the custom-lines audit event joins the same batch
    assert not any(sql.startswith(("SAVEPOINT", "RELEASE")) for sql in one_line)
    assert sum(sql.startswith("SELECT") and 'FROM "invoices_invoice"' in sql for sql in one_line) == 0  # no read-back
    assert sum("UPDATE audit_auditchainhead SET" in sql for sql in with_custom_line) == 1  # head moved once
    assert len(many.json()["lines"]) == 5
    with rls.acting_as(PRINCIPAL):
        assert AuditEvent.objects.filter(object_id=custom.json()["id"]).count() == 3  # created, issued, custom lines


def test_a_creation_sends_statement_texts_psycopg_has_parsed_before(
    o2s: tuple[O2SClient, Customer, Product],
) -> None:
    """Every statement of a creation has the text of the previous creation's, so psycopg's
    per-process parse cache answers for all of them: a name that changed per request (the
    tail statement's CTE names once held the invoice id) cost a fresh parse of the largest
    statement on every request (docs/performance.md)."""
    api, customer, product = o2s
    assert _create(api, _body(customer, product)).status_code == 201
    parsed = _queries._query2pg_client.cache_info().misses  # psycopg's client-side binding cache

    assert _create(api, _body(customer, product)).status_code == 201

    assert _queries._query2pg_client.cache_info().misses == parsed


def test_reading_invoices_takes_the_same_statements_whatever_the_page_size(
    o2s: tuple[O2SClient, Customer, Product],
) -> None:
    api, customer, product = o2s
    created = [_create(api, _body(customer, product, lines=2)).json() for _ in range(50)]
    api.get(URL, {"customer": str(customer.id)})  # warm-up

    one, page_of_one = _statements(lambda: api.get(URL, {"customer": str(customer.id), "page_size": 1}))
    fifty, page_of_fifty = _statements(lambda: api.get(URL, {"customer": str(customer.id), "page_size": 50}))
    detail, invoice = _statements(lambda: api.get(f"{URL}{created[0]['id']}/"))

    assert (len(one.json()["results"]), len(fifty.json()["results"]), detail.status_code) == (1, 50, 200)
    assert len(page_of_one) == len(page_of_fifty) == len(invoice) == 6, "\n".join(page_of_fifty)
    # what a creation answers from memory is what a read returns (the pay link is signed
    # with the time it was made, so only its presence compares)
    read, answered = detail.json(), created[0]
    assert (read.pop("pay_url") is None, answered.pop("pay_url") is None) == (False, False)
    assert read == answered


# --- no lock held across the work ----------------------------------------------------------


def _in_thread(target: Callable[[], Any], results: list[Any], errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            results.append(target())
        except BaseException as exc:  # noqa: BLE001 - the test asserts on it
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_creation_does_not_wait_for_another_that_has_not_reached_its_number(
    o2s: tuple[O2SClient, Customer, Product], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stops just before it would take its number, and B then runs from start to COMMIT
    without waiting for A: A holds neither the number counter nor the audit chain head yet.
    And that point is late: A has authenticated, claimed its idempotency key, read and
    priced everything; after its number it only writes and commits."""
    api, customer, product = o2s
    real_next = numbering.invoice_number_next
    reached, release = threading.Event(), threading.Event()
    marks: list[int] = []

    def next_number(*, issue_date: Any) -> str:
        if not marks:  # the first creation (A) stops here
            marks.append(len(connection.queries_log))
            reached.set()
            assert release.wait(WAIT_SECONDS)
        return real_next(issue_date=issue_date)

    def create_logged() -> tuple[Any, list[str]]:
        connection.force_debug_cursor = True  # this thread's connection logs its statements
        response = _create(api, _body(customer, product))
        return response, [query["sql"] for query in connection.queries_log]

    monkeypatch.setattr(numbering, "invoice_number_next", next_number)
    first: list[Any] = []
    second: list[Any] = []
    errors: list[BaseException] = []
    a = _in_thread(create_logged, first, errors)
    try:
        assert reached.wait(WAIT_SECONDS)
        b = _in_thread(lambda: _create(api, _body(customer, product)), second, errors)
        b.join(WAIT_SECONDS)
        assert not b.is_alive(), "B waited for A"
        assert errors == []
        assert second[0].status_code == 201
        assert first == []  # A is still stopped before its number
    finally:
        release.set()
        a.join(WAIT_SECONDS)

    assert errors == []
    (a_response, a_statements) = first[0]
    assert a_response.status_code == 201
    a_number, b_number = a_response.json()["number"], second[0].json()["number"]
    assert int(a_number.rsplit("-", 1)[1]) == int(b_number.rsplit("-", 1)[1]) + 1  # B numbered first
    with rls.acting_as(PRINCIPAL):
        a_events = AuditEvent.objects.filter(object_id=a_response.json()["id"]).values_list("sequence", flat=True)
        b_events = AuditEvent.objects.filter(object_id=second[0].json()["id"]).values_list("sequence", flat=True)
        assert max(b_events) < min(a_events)  # and took its chain position first
    before, after = a_statements[: marks[0]], a_statements[marks[0] :]
    assert any("o2s_idempotency_claim" in sql for sql in before)
    assert any(sql.startswith("SELECT") and "billing_customer" in sql for sql in before)
    assert not any("invoicenumbersequence" in sql or "audit_auditchainhead" in sql for sql in before)
    assert [sql.split(None, 1)[0] for sql in after] == [
        "INSERT",  # the number
        "WITH",  # the lines, the invoice, the idempotency record, and the audit chain head locked
        "WITH",  # the audit events, and the head moved past them
        "COMMIT",
    ], "\n".join(after)
    assert all(table in after[1] for table in ("invoices_invoiceline", "invoices_invoice", "paymenter_idempotency"))
    assert after[1].endswith("FOR NO KEY UPDATE")


# --- gapless numbering with rollbacks in the middle ----------------------------------------


def _sessions_waiting_for_the_counter() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE %s",
            ["%invoices_invoicenumbersequence%"],
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def _wait_until(condition: Callable[[], bool]) -> None:
    """Poll a database condition (not a duration): the bound only ends a broken run."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.02)


def test_numbers_stay_gapless_when_holders_of_a_number_roll_back_while_others_wait(
    o2s: tuple[O2SClient, Customer, Product], monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """Each round: F takes a number and holds it; three creations queue on the counter;
    F fails (its transaction rolls back) and the three get F's number and the next two."""
    api, customer, product = o2s
    prefix = "GAP" + uuid.uuid4().hex[:8].upper().translate(str.maketrans("0123456789", "GHIJKLMNOP"))
    settings.INVOICE_NUMBER_PREFIX = prefix
    real_next = numbering.invoice_number_next
    role = threading.local()
    holding, go = threading.Event(), threading.Event()

    def next_number(*, issue_date: Any) -> str:
        number = real_next(issue_date=issue_date)
        if getattr(role, "fails", False):
            holding.set()
            assert go.wait(WAIT_SECONDS)
            raise RuntimeError("injected failure after taking a number")
        return number

    monkeypatch.setattr(numbering, "invoice_number_next", next_number)

    def create(*, fails: bool) -> Any:
        role.fails = fails
        return _create(api, _body(customer, product))

    created: list[Any] = []
    for _round in range(2):
        holding.clear()
        go.clear()
        failures: list[BaseException] = []
        failing = _in_thread(lambda: create(fails=True), [], failures)
        assert holding.wait(WAIT_SECONDS)
        errors: list[BaseException] = []
        waiting = [_in_thread(lambda: create(fails=False), created, errors) for _ in range(3)]
        _wait_until(lambda: _sessions_waiting_for_the_counter() >= 3)
        go.set()
        for thread in [failing, *waiting]:
            thread.join(WAIT_SECONDS)
        assert [str(error) for error in failures] == ["injected failure after taking a number"]
        assert errors == []

    assert [response.status_code for response in created] == [201] * 6
    year = seller_today().year
    expected = [numbering.format_invoice_number(prefix=prefix, year=year, number=n) for n in range(1, 7)]
    assert sorted(response.json()["number"] for response in created) == expected
    with rls.acting_as(PRINCIPAL):
        numbers = Invoice.objects.filter(number__startswith=f"{prefix}-").values_list("number", flat=True)
        assert sorted(str(number) for number in numbers) == expected
        assert InvoiceNumberSequence.objects.get(prefix=prefix, year=year).last_number == 6
