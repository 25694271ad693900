"""gunicorn's configuration, read from the working directory (``gunicorn paymenter.wsgi``)
in the image, in ``make bench`` and wherever gunicorn is started from the project root;
command-line flags and ``GUNICORN_CMD_ARGS`` override it.

Worker model: **sync** workers, one request per process at a time (docs/operations.md).
* A request owns its process for its whole life: the acting principal (a context
  variable, ``paymenter.rls``) and the database connection are never shared with another
  request, and nothing a request leaves behind can meet a concurrent one.
* No keep-alive: every response closes its connection, so a refused upload (413) cannot
  leave unread bytes that corrupt the next request on the same connection (seen with
  ``gthread``).
* The work is CPU-bound Python; threads would share one GIL per process anyway.
* A slow client would hold a worker, so gunicorn runs behind a buffering reverse proxy
  (README, "Running in production"), as gunicorn's documentation requires for sync workers.

Database connections: each worker borrows from its own psycopg pool (at most
``DB_POOL_MAX_SIZE``, settings), and a sync worker needs one at a time, so the web tier holds
at most ``workers`` connections in use and ``workers x DB_POOL_MAX_SIZE`` open.
"""

import multiprocessing
import os

worker_class = "sync"
# WEB_CONCURRENCY is the usual knob. 4 x cores + 1, not gunicorn's usual 2 x cores + 1: a
# worker waits on PostgreSQL and Redis for part of every request, and with 2 x cores + 1
# O2S's requests queued behind a flood of refused ones (p50 2.3x idle, against 1.1-1.7x with
# 4 x cores + 1; benchmarks/refusal_flood.py, docs/performance.md).
workers = int(os.environ.get("WEB_CONCURRENCY", str(4 * multiprocessing.cpu_count() + 1)))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
max_requests = 2000  # recycle workers now and then (memory), with jitter so not all at once
max_requests_jitter = 200
accesslog = "-"
# access and error logs with card numbers and secrets redacted (docs/security.md)
logger_class = "paymenter.gunicorn_logging.RedactingGunicornLogger"
# no runtime control socket: it would be shared in $HOME by every gunicorn of the host, and
# signals (HUP, TERM, TTIN/TTOU) are how this deployment manages workers
control_socket_disable = True
