"""``Idempotency-Key`` on O2S POSTs: replay, reuse, per-key scope, concurrency, retention.

Driven through a test-only endpoint (``tests/o2s/urls_idempotency.py``) whose handler
creates a customer with the real service, so "executed once" is counted in customer rows
and audit events.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from billing.models import ApiKey, Customer
from o2s import idempotency
from o2s.idempotency import idempotency_records_purge
from o2s.models import IdempotencyRecord
from paymenter import rls
from tests.o2s.urls_idempotency import GATES, PRINCIPAL, Gate

pytestmark = pytest.mark.urls("tests.o2s.urls_idempotency")

URL = "/o2s-test/customers/"


def _api_key() -> ApiKey:
    return ApiKey.objects.create(
        name="idempotency test",
        lookup_id=uuid.uuid4().hex[:16],
        key_hash="0" * 64,
        allowed_networks=["127.0.0.1/32"],
    )


def _body(external_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "billing_country": "AU",
        "name": f"Customer {external_id}",
        "email": f"{external_id}@idempotency.example",
        **extra,
    }


def _post(client: Client, api_key: ApiKey, body: dict[str, Any], key: str | None) -> Any:
    headers = {"X-Test-Api-Key": str(api_key.id)}
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(URL, body, content_type="application/json", headers=headers)


def _written(external_id: str) -> tuple[int, int]:
    """(customers, customer-created audit events) for one external id."""
    with rls.acting_as(PRINCIPAL):
        customers = Customer.objects.filter(external_id=external_id).count()
        events = AuditEvent.objects.filter(
            object_type="customer", action="customer.created", payload__external_id=external_id
        ).count()
    return customers, events


@pytest.fixture(autouse=True)
def _as_the_system() -> Iterator[None]:
    """The test body reads and ages records directly, as the purge task does (system scope;
    row-level security hides them from anyone else)."""
    with rls.acting_as(PRINCIPAL):
        yield


def _records(api_key: ApiKey) -> int:
    return IdempotencyRecord.objects.filter(api_key=api_key).count()


# --- one connection (per-test transaction) --------------------------------------------------


@pytest.mark.django_db
def test_same_key_and_body_replays_the_first_response_without_running_again() -> None:
    api_key, client, external_id = _api_key(), Client(), f"idem-{uuid.uuid4().hex[:12]}"

    first = _post(client, api_key, _body(external_id), key="order-1")
    # O2S re-serialises the same document with another key order: still the same request.
    second = _post(client, api_key, dict(reversed(list(_body(external_id).items()))), key="order-1")

    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    assert (second.status_code, second.json()) == (201, first.json())
    assert second.headers["Idempotent-Replayed"] == "true"
    assert _written(external_id) == (1, 1)
    record = IdempotencyRecord.objects.get(api_key=api_key, key="order-1")
    assert (record.response_status, record.response_body) == (201, first.json())


@pytest.mark.django_db
def test_same_key_with_another_body_is_refused_and_writes_nothing() -> None:
    api_key, client = _api_key(), Client()
    external_id, other_id = f"idem-{uuid.uuid4().hex[:12]}", f"idem-{uuid.uuid4().hex[:12]}"
    _post(client, api_key, _body(external_id), key="order-2")

    refused = _post(client, api_key, _body(other_id), key="order-2")

    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "idempotency_key_reused"
    assert _written(other_id) == (0, 0)
    assert _records(api_key) == 1


@pytest.mark.django_db
def test_keys_are_scoped_per_api_key() -> None:
    key_a, key_b, client = _api_key(), _api_key(), Client()
    id_a, id_b = f"idem-{uuid.uuid4().hex[:12]}", f"idem-{uuid.uuid4().hex[:12]}"

    answer_a = _post(client, key_a, _body(id_a), key="shared-key")
    answer_b = _post(client, key_b, _body(id_b), key="shared-key")

    assert (answer_a.status_code, answer_b.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in answer_b.headers
    assert (answer_a.json()["external_id"], answer_b.json()["external_id"]) == (id_a, id_b)
    assert (_written(id_a), _written(id_b)) == ((1, 1), (1, 1))
    assert (_records(key_a), _records(key_b)) == (1, 1)


@pytest.mark.django_db
def test_without_a_key_every_request_runs() -> None:
    api_key, client = _api_key(), Client()
    id_1, id_2 = f"idem-{uuid.uuid4().hex[:12]}", f"idem-{uuid.uuid4().hex[:12]}"

    assert _post(client, api_key, _body(id_1), key=None).status_code == 201
    assert _post(client, api_key, _body(id_2), key=None).status_code == 201

    assert (_written(id_1), _written(id_2), _records(api_key)) == ((1, 1), (1, 1), 0)


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", " padded", "padded ", "naïve", "tab\there", "x" * 256])
def test_a_malformed_key_is_refused_before_anything_runs(key: str) -> None:
    api_key, external_id = _api_key(), f"idem-{uuid.uuid4().hex[:12]}"

    refused = _post(Client(), api_key, _body(external_id), key=key)

    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "idempotency_key_invalid"
    assert (_written(external_id), _records(api_key)) == ((0, 0), 0)


@pytest.mark.django_db
def test_a_refusal_is_not_stored_so_the_same_key_runs_again() -> None:
    api_key, client, external_id = _api_key(), Client(), f"idem-{uuid.uuid4().hex[:12]}"
    invalid = _body(external_id, email="not-an-email")

    first = _post(client, api_key, invalid, key="order-3")
    again = _post(client, api_key, invalid, key="order-3")

    assert (first.status_code, again.status_code) == (400, 400)
    assert first.json()["error"]["code"] == "invalid_customer"
    assert "Idempotent-Replayed" not in again.headers  # executed again, not replayed
    assert (_written(external_id), _records(api_key)) == ((0, 0), 0)

    corrected = _post(client, api_key, _body(external_id), key="order-3")

    assert corrected.status_code == 201
    assert (_written(external_id), _records(api_key)) == ((1, 1), 1)


@pytest.mark.django_db
def test_a_refusal_keeps_what_the_service_recorded_on_purpose() -> None:
    # Like invoice_require_intact: the refusal's audit event must survive the refusal.
    api_key, external_id = _api_key(), f"idem-{uuid.uuid4().hex[:12]}"

    refused = _post(Client(), api_key, _body(external_id, mode="audited_refusal"), key="order-4")

    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "test_refused"
    with rls.acting_as(PRINCIPAL):
        kept = AuditEvent.objects.filter(object_type="idempotency-test", object_id=external_id).count()
    assert (kept, _written(external_id), _records(api_key)) == (1, (0, 0), 0)


@pytest.mark.django_db
def test_an_unexpected_failure_rolls_back_the_business_write() -> None:
    api_key, external_id = _api_key(), f"idem-{uuid.uuid4().hex[:12]}"

    with pytest.raises(RuntimeError, match="unexpected failure"):
        _post(Client(), api_key, _body(external_id, mode="crash"), key="order-5")

    assert (_written(external_id), _records(api_key)) == ((0, 0), 0)


@pytest.mark.django_db
def test_the_unique_constraint_backstop_answers_409_and_rolls_the_request_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stored response is written as the transaction ends; if the key's lock were ever
    bypassed and a record for the key already existed, the unique constraint refuses it
    and the request ends as a 409 with nothing of it kept (not a 500, not a half write)."""
    api_key, external_id = _api_key(), f"idem-{uuid.uuid4().hex[:12]}"
    existing: Any = {"id": "earlier"}  # the encrypted field's stub type names its stored form
    IdempotencyRecord.objects.create(
        api_key=api_key, key="order-dup", request_fingerprint="0" * 64, response_status=201, response_body=existing
    )
    monkeypatch.setattr(idempotency, "_lock_and_replay", lambda **_: None)  # the lock and lookup bypassed

    answer = _post(Client(), api_key, _body(external_id), key="order-dup")

    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "idempotency_key_in_use")
    assert (_written(external_id), _records(api_key)) == ((0, 0), 1)


@pytest.mark.django_db
def test_a_day_old_response_is_still_replayed() -> None:
    api_key, client, external_id = _api_key(), Client(), f"idem-{uuid.uuid4().hex[:12]}"
    first = _post(client, api_key, _body(external_id), key="order-6")
    IdempotencyRecord.objects.filter(api_key=api_key).update(created_at=timezone.now() - dt.timedelta(hours=24))

    replay = _post(client, api_key, _body(external_id), key="order-6")

    assert (replay.status_code, replay.json(), replay.headers["Idempotent-Replayed"]) == (201, first.json(), "true")
    assert _written(external_id) == (1, 1)


@pytest.mark.django_db
def test_a_key_older_than_the_retention_is_forgotten_and_runs_again() -> None:
    api_key, client = _api_key(), Client()
    id_1, id_2 = f"idem-{uuid.uuid4().hex[:12]}", f"idem-{uuid.uuid4().hex[:12]}"
    _post(client, api_key, _body(id_1), key="order-7")
    IdempotencyRecord.objects.filter(api_key=api_key).update(created_at=timezone.now() - dt.timedelta(hours=49))

    reused = _post(client, api_key, _body(id_2), key="order-7")  # another body: no 422 any more

    assert reused.status_code == 201
    assert "Idempotent-Replayed" not in reused.headers
    assert _written(id_2) == (1, 1)
    assert IdempotencyRecord.objects.get(api_key=api_key).response_body["external_id"] == id_2


@pytest.mark.django_db
def test_purge_removes_records_beyond_the_retention_only() -> None:
    api_key, client = _api_key(), Client()
    for index in range(3):
        _post(client, api_key, _body(f"idem-{uuid.uuid4().hex[:12]}"), key=f"purge-{index}")
    now = timezone.now()
    IdempotencyRecord.objects.filter(api_key=api_key, key="purge-0").update(created_at=now - dt.timedelta(hours=49))
    IdempotencyRecord.objects.filter(api_key=api_key, key="purge-1").update(created_at=now - dt.timedelta(hours=47))

    purged = idempotency_records_purge()

    assert purged >= 1
    remaining = IdempotencyRecord.objects.filter(api_key=api_key).order_by("key").values_list("key", flat=True)
    assert list(remaining) == ["purge-1", "purge-2"]
    assert idempotency_records_purge() == 0  # re-runnable


def test_purge_refuses_to_forget_keys_younger_than_a_day() -> None:
    with pytest.raises(ValueError, match="at least"):
        idempotency_records_purge(older_than=dt.timedelta(hours=23))


# --- real concurrency: separate connections, committed data ---------------------------------


def _in_thread(target: Callable[[], Any], results: list[Any], errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            results.append(target())
        except BaseException as exc:  # noqa: BLE001 - re-raised by the test below
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.committed
def test_a_duplicate_while_the_first_is_in_flight_gets_409_then_replays(committed_db: None) -> None:
    api_key, external_id = _api_key(), f"idem-{uuid.uuid4().hex[:12]}"
    body = _body(external_id, mode="gate")
    GATES[external_id] = gate = Gate()
    first: list[Any] = []
    second: list[Any] = []
    errors: list[BaseException] = []
    try:
        first_thread = _in_thread(lambda: _post(Client(), api_key, body, key="flight"), first, errors)
        assert gate.entered.wait(timeout=30)  # the first request holds the key, uncommitted

        _in_thread(lambda: _post(Client(), api_key, body, key="flight"), second, errors).join(timeout=30)

        assert errors == []
        assert second[0].status_code == 409
        assert second[0].json()["error"]["code"] == "idempotency_key_in_use"
        assert _written(external_id) == (0, 0)  # not committed yet: nothing visible
    finally:
        gate.release.set()
        first_thread.join(timeout=30)
        GATES.pop(external_id, None)

    third: list[Any] = []
    _in_thread(lambda: _post(Client(), api_key, body, key="flight"), third, errors).join(timeout=30)

    assert errors == []
    assert first[0].status_code == 201
    assert (third[0].status_code, third[0].json()) == (201, first[0].json())
    assert third[0].headers["Idempotent-Replayed"] == "true"
    assert _written(external_id) == (1, 1)
    assert _records(api_key) == 1


@pytest.mark.committed
def test_concurrent_identical_requests_execute_exactly_once(committed_db: None) -> None:
    api_key, external_id = _api_key(), f"idem-{uuid.uuid4().hex[:12]}"
    body = _body(external_id)
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    results: list[Any] = []
    errors: list[BaseException] = []

    def request() -> Any:
        client = Client()
        barrier.wait(timeout=30)
        return _post(client, api_key, body, key="burst")

    threads = [_in_thread(request, results, errors) for _ in range(threads_count)]
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    statuses = sorted(answer.status_code for answer in results)
    assert len(statuses) == threads_count
    assert set(statuses) <= {201, 409}
    created = [answer for answer in results if answer.status_code == 201]
    executed = [answer for answer in created if "Idempotent-Replayed" not in answer.headers]
    assert len(executed) == 1
    assert all(answer.json() == executed[0].json() for answer in created)
    assert _written(external_id) == (1, 1)
    assert _records(api_key) == 1
