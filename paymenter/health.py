"""Liveness and readiness probes for the load balancer and the orchestrator.

* ``/healthz``: the process is up and serving requests. Touches no dependency, so a
  database outage does not make the orchestrator restart healthy web processes.
* ``/metrics``: the operational counters, Prometheus text, for the scraper's networks only.
* ``/readyz``: the dependencies a request needs answer (PostgreSQL ``SELECT 1`` on the
  ``default`` connection, Redis ``PING``). 503 takes the instance out of rotation.

Both are anonymous, GET only, never cached, and exempt from the HTTPS redirect
(``SECURE_REDIRECT_EXEMPT``). A failure is reported by dependency name only; the
exception itself goes to the log, never into the response.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable

from django.conf import settings
from django.db import Error as DatabaseError
from django.db import connections
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_redis import get_redis_connection
from redis.exceptions import RedisError

from paymenter.client_ip import client_ip, parse_ip
from paymenter.metrics import metrics_text

logger = logging.getLogger(__name__)

OK = "ok"
UNAVAILABLE = "unavailable"


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": OK})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks = {name: _probe(name, probe) for name, probe in _PROBES.items()}
    ready = all(result == OK for result in checks.values())
    return JsonResponse({"status": OK if ready else UNAVAILABLE, "checks": checks}, status=200 if ready else 503)


def _probe(name: str, probe: Callable[[], None]) -> str:
    try:
        probe()
    except (DatabaseError, RedisError, OSError) as exc:
        logger.warning(
            "readiness probe failed",
            exc_info=True,
            extra={"dependency": name, "error_type": type(exc).__name__},
        )
        return UNAVAILABLE
    return OK


def database_ping() -> None:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def redis_ping() -> None:
    get_redis_connection("default").ping()


_PROBES: dict[str, Callable[[], None]] = {"database": database_ping, "redis": redis_ping}


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """The operational counters (``paymenter.metrics``) in the Prometheus text format, for
    a scraper on ``METRICS_ALLOWED_NETWORKS`` only (default: this host); 404 for anyone else,
    so the endpoint does not advertise itself."""
    address = parse_ip(client_ip(request))
    allowed = [ipaddress.ip_network(cidr, strict=False) for cidr in settings.METRICS_ALLOWED_NETWORKS]
    if address is None or not any(address.version == net.version and address in net for net in allowed):
        raise Http404
    return HttpResponse(metrics_text(), content_type="text/plain; version=0.0.4; charset=utf-8")
