"""The baselines the O2S endpoints are compared with: the same server, middleware and
database connection, and exactly one statement each.

* ``POST /bench/baseline-insert/`` (:func:`baseline_view`): one ``INSERT ... RETURNING id``
  of the request body (truncated), answered 201 ``{"id": ...}``; the baseline of
  ``POST /api/v1/invoices/`` (and of the webhook benchmark);
* ``GET /bench/baseline-select/?limit=N`` (:func:`baseline_select_list`): one ``SELECT`` of
  the newest ``N`` rows of ``bench_baseline_select``, answered 200 as a page
  ``{"next": null, "previous": null, "results": [...]}``; the baseline of
  ``GET /api/v1/invoices/?page_size=N``;
* ``GET /bench/baseline-select/<id>/`` (:func:`baseline_select_one`): one ``SELECT`` of one
  row by primary key, answered 200 with its document, or 404; the baseline of
  ``GET /api/v1/invoices/<id>/``.

The tables are created by ``benchmarks.invoice_create`` as the owner role (INSERT, resp.
SELECT granted to the application role); they are not part of the migrations. Each row of
``bench_baseline_select`` holds an invoice's document as the API answered it (``jsonb``), so
a baseline response carries as many bytes and JSON values as the endpoint's: the view decodes
each row's JSON and encodes the answer with ``json``, the least a view serving these rows
can do. No principal is active, so the RLS backend adds no ``set_config`` and wraps nothing:
what is left is Django's request handling plus one autocommit statement.
"""

from __future__ import annotations

import json

from django.db import connection
from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

TABLE = "bench_baseline_insert"
SELECT_TABLE = "bench_baseline_select"
# The request body is stored (truncated) so the row carries a payload of the invoice's size.
_PAYLOAD_LIMIT = 1000
_INSERT_SQL = f"INSERT INTO {TABLE} (payload) VALUES (%s) RETURNING id"  # noqa: S608 - constant table name
_SELECT_PAGE_SQL = f"SELECT document FROM {SELECT_TABLE} ORDER BY id DESC LIMIT %s"  # noqa: S608 - constant table name
_SELECT_ONE_SQL = f"SELECT document FROM {SELECT_TABLE} WHERE id = %s"  # noqa: S608 - constant table name
_DEFAULT_LIMIT = 25
_MAX_LIMIT = 100


@csrf_exempt
@require_POST
def baseline_view(request: HttpRequest) -> JsonResponse:
    payload = request.body[:_PAYLOAD_LIMIT].decode("utf-8", errors="replace")
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_SQL, [payload])
        row = cursor.fetchone()
    return JsonResponse({"id": row[0] if row else None}, status=201)


def _document(value: object) -> object:
    """A ``jsonb`` value as Django's psycopg backend returns it: text, decoded here."""
    return json.loads(value) if isinstance(value, str | bytes) else value


@require_GET
def baseline_select_list(request: HttpRequest) -> JsonResponse:
    try:
        limit = min(_MAX_LIMIT, max(1, int(request.GET.get("limit", _DEFAULT_LIMIT))))
    except ValueError:
        limit = _DEFAULT_LIMIT
    with connection.cursor() as cursor:
        cursor.execute(_SELECT_PAGE_SQL, [limit])
        rows = cursor.fetchall()
    return JsonResponse({"next": None, "previous": None, "results": [_document(row[0]) for row in rows]})


@require_GET
def baseline_select_one(request: HttpRequest, row_id: int) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute(_SELECT_ONE_SQL, [row_id])
        row = cursor.fetchone()
    if row is None:
        raise Http404
    return JsonResponse(_document(row[0]), safe=False)
