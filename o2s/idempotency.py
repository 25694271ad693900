"""``Idempotency-Key`` for O2S POSTs: the first success is stored and replayed.

Semantics (docs/idempotency.md), per API key:

* same key, same request (method, path, query, canonical JSON body) within
  ``IDEMPOTENCY_RETENTION_HOURS`` -> the stored status and body again, with
  ``Idempotent-Replayed: true``; nothing is executed;
* same key, different request -> 422 ``idempotency_key_reused``;
* same key while the first request is still running -> 409 ``idempotency_key_in_use``;
* no key -> the handler runs once, in one transaction, as without this module.

The record is written in the transaction of the business change, under a transaction-level
advisory lock on (API key, key): both commit or neither does, and a concurrent duplicate
cannot start until the first has committed (then it replays).

Only 2xx responses are stored. A refusal (``PaymenterError``) stores nothing, so a retry
with the same key runs again. The transaction then ends the way the handler's services
left it: their own savepoints already undid their writes, and what they deliberately kept
(the audit record of a checksum mismatch) is committed rather than silently rolled back. A
service whose unit of work opens no savepoint refuses before it writes anything; an error
inside it marks the whole transaction for rollback.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from audit.services import TailInsert, audit_deferred, tail_insert, tail_name
from o2s.errors import (
    HEADER,
    MAX_KEY_LENGTH,
    IdempotencyKeyInUseError,
    IdempotencyKeyInvalidError,
    IdempotencyKeyReusedError,
)
from o2s.models import IdempotencyRecord
from paymenter import rls
from paymenter.card_numbers import CardNumberNotAllowedError
from paymenter.errors import PaymenterError
from paymenter.principals import SystemPrincipal
from paymenter.redaction import contains_card_number
from paymenter.sql_rows import insert_sql, rows_saved

REPLAYED_HEADER = "Idempotent-Replayed"
# What O2S was promised: a key is remembered for at least a day.
MIN_RETENTION = dt.timedelta(hours=24)
PURGE_BATCH_SIZE = 1000
# Printable ASCII; no leading/trailing space (proxies strip it, so it could not round-trip).
_KEY_RE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")
_UNIQUE_KEY_CONSTRAINT = "idempotency_unique_key"  # o2s.models.IdempotencyRecord
_LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE o2s_idempotency_claim raises for a key in use
_LOCK_NAMESPACE = "paymenter.idempotency"  # unchanged since the module moved: the lock key O2S requests share
PURGE_PRINCIPAL = SystemPrincipal(label="worker:idempotency-purge")

Handler = Callable[[], Response]


def retention() -> dt.timedelta:
    """How long a stored response is replayed (and kept): ``IDEMPOTENCY_RETENTION_HOURS``."""
    return dt.timedelta(hours=settings.IDEMPOTENCY_RETENTION_HOURS)


def idempotency_key_from(request: Request) -> str | None:
    """The request's key, ``None`` without the header; a malformed key is refused (400), and
    so is one holding a card number (400 ``card_number_not_allowed``): the key is stored."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if contains_card_number(key):
        raise CardNumberNotAllowedError([HEADER])
    if len(key) > MAX_KEY_LENGTH or not _KEY_RE.fullmatch(key):
        raise IdempotencyKeyInvalidError()
    return key


def request_fingerprint(request: Request) -> str:
    """sha256 (hex) of method, path, query and body, the body as canonical JSON.

    Canonical (sorted keys, fixed separators) so that O2S re-serialising the same document
    with another key order or whitespace is still "the same request". Values compare by JSON
    type: ``1`` and ``1.0`` differ.
    """
    data: Any = request.data
    if hasattr(data, "lists"):  # a QueryDict (form or empty body): keep repeated fields
        data = dict(data.lists())
    document = {
        "method": request.method,
        "path": request.path,
        "query": sorted((name, values) for name, values in request.query_params.lists()),
        "body": data,
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def run_idempotently(*, request: Request, api_key_id: Any, handler: Handler) -> Response:
    """Run ``handler`` (an O2S POST) at most once per ``(api_key_id, Idempotency-Key)``.

    ``handler`` performs the business write through services and returns the response;
    it runs inside this function's transaction, so its services become savepoints of it.
    """
    key = idempotency_key_from(request)
    if key is None:
        return _run_in_transaction(handler, on_success=None)
    fingerprint = request_fingerprint(request)

    def store(response: Response) -> None:
        record = IdempotencyRecord(
            api_key_id=api_key_id,
            key=key,
            request_fingerprint=fingerprint,
            response_status=response.status_code,
            response_body=_json_body(response),
        )
        sql, params = insert_sql(IdempotencyRecord, [record])
        # written with the audit chain position at the end of the request's unit of work (one
        # round trip); the unique constraint is the backstop, see _run_in_transaction
        tail_insert(TailInsert(name=tail_name("idempotency_record"), sql=sql, params=params))
        rows_saved([record])

    return _run_in_transaction(
        handler,
        on_success=store,
        before=lambda: _lock_and_replay(api_key_id=api_key_id, key=key, fingerprint=fingerprint),
    )


def _run_in_transaction(
    handler: Handler,
    *,
    on_success: Callable[[Response], None] | None,
    before: Callable[[], Response | None] | None = None,
) -> Response:
    """One transaction around ``before`` (may answer instead), ``handler`` and ``on_success``.

    A ``PaymenterError`` from the handler is re-raised after the transaction ends *without*
    rolling it back: the service that refused has already undone its own writes (its
    savepoint), and some refusals are recorded on purpose (e.g. a checksum-mismatch audit
    event). Any other exception rolls everything back. Durable: a request is never nested
    in someone else's transaction, so commit really means committed.
    """
    refusal: PaymenterError | None = None
    # audit events of the request are appended last, after the stored response: the
    # chain-head lock then spans only that INSERT and the COMMIT (docs/performance.md)
    try:
        with transaction.atomic(durable=True), audit_deferred():
            if before is not None:
                answer = before()
                if answer is not None:
                    return answer
            try:
                response = handler()
            except PaymenterError as exc:
                refusal = exc
            else:
                if on_success is not None and 200 <= response.status_code < 300:
                    on_success(response)
    except IntegrityError as exc:  # the stored response, written as the transaction ends
        if _constraint_of(exc) == _UNIQUE_KEY_CONSTRAINT:  # the lock makes this unreachable: a backstop
            raise IdempotencyKeyInUseError() from exc
        raise
    if refusal is not None:
        raise refusal
    return response


def _constraint_of(exc: IntegrityError) -> str | None:
    diag = getattr(exc.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None)


def _lock_and_replay(*, api_key_id: Any, key: str, fingerprint: str) -> Response | None:
    """Take the key's lock (or 409); answer from a live record (replay or 422), else ``None``.

    One round trip for a new key (``o2s_idempotency_claim``, migration ``o2s.0003``): the
    lookup runs after the lock is granted with a fresh snapshot, so a duplicate that waited
    for the first request's commit sees its record and replays (a second query then reads
    the record itself).
    """
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM o2s_idempotency_claim(%s, %s, %s)",
                [f"{_LOCK_NAMESPACE}:{api_key_id}:{key}", api_key_id, key],
            )
            claimed = cursor.fetchone()
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
            raise IdempotencyKeyInUseError() from exc
        raise
    if claimed is None:
        return None  # the usual case: a new key, one round trip
    # the key was used before (a retry): read the record, committed and visible, with its
    # fields decoded (the response body decrypted)
    record = IdempotencyRecord.objects.get(pk=claimed[0])
    if record.created_at < timezone.now() - retention():
        record.delete()  # forgotten but not yet purged: the key is free again
        return None
    if record.request_fingerprint != fingerprint:
        raise IdempotencyKeyReusedError()
    return Response(record.response_body, status=record.response_status, headers={REPLAYED_HEADER: "true"})


def _json_body(response: Response) -> Any:
    """The body exactly as the client receives it (DRF's JSON encoding of UUIDs, dates,
    decimals), as a JSON document for the encrypted column."""
    if response.data is None:
        raise TypeError("an idempotent POST must answer a success with a JSON body")
    return json.loads(JSONRenderer().render(response.data))


def idempotency_records_purge(*, older_than: dt.timedelta | None = None) -> int:
    """Delete stored responses older than ``older_than`` (default: the retention); returns
    how many. Batched, so a large backlog never holds long locks; safe to run repeatedly.

    Refuses to forget keys younger than 24 hours: O2S relies on that window. Runs as the
    system (row-level security shows an API key only its own records).
    """
    age = retention() if older_than is None else older_than
    if age < MIN_RETENTION:
        raise ValueError(f"idempotency records must be kept at least {MIN_RETENTION}")
    cutoff = timezone.now() - age
    deleted = 0
    with rls.acting_as(PURGE_PRINCIPAL):
        while True:
            batch = list(
                IdempotencyRecord.objects.filter(created_at__lt=cutoff)
                .order_by("created_at")
                .values_list("id", flat=True)[:PURGE_BATCH_SIZE]
            )
            if not batch:
                return deleted
            count, _ = IdempotencyRecord.objects.filter(id__in=batch).delete()
            deleted += count
