"""The baseline the invoice endpoint is compared with: the same server, middleware and
database connection, and exactly one INSERT.

The table ``bench_baseline_insert`` is created (as the owner role, with INSERT granted to
the application role) by ``benchmarks.invoice_create``; it is not part of the migrations.
No principal is active, so the RLS backend adds no ``set_config`` round trip: what is left
is Django's request handling plus one autocommit statement.
"""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

TABLE = "bench_baseline_insert"
# The request body is stored (truncated) so the row carries a payload of the invoice's size.
_PAYLOAD_LIMIT = 1000
_INSERT_SQL = f"INSERT INTO {TABLE} (payload) VALUES (%s) RETURNING id"  # noqa: S608 - constant table name


@csrf_exempt
@require_POST
def baseline_view(request: HttpRequest) -> JsonResponse:
    payload = request.body[:_PAYLOAD_LIMIT].decode("utf-8", errors="replace")
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_SQL, [payload])
        row = cursor.fetchone()
    return JsonResponse({"id": row[0] if row else None}, status=201)
