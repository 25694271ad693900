"""Start localstripe (a fake Stripe API server) on loopback with its state in a chosen folder.

``python -m devtools.localstripe_launcher --host 127.0.0.1 --port N --state-dir DIR``

Why a launcher instead of ``python -m localstripe``:

* **Loopback only.** ``localstripe.server.start()`` binds ``::`` (every interface) and has no
  host option, so a developer's fake payment API would be reachable from the network. We call
  ``aiohttp.web.run_app`` ourselves with the given host and refuse anything that is not a
  loopback address.
* **Isolated state.** localstripe pickles its whole store to the hard-coded
  ``/tmp/localstripe.pickle`` after every write, so two test sessions (or a test session and
  ``make run``) on one machine would share and clobber one file. Here the Store's
  ``try_load_from_disk``/``dump_to_disk`` are redirected to ``DIR/localstripe.pickle``.
* **Licence.** localstripe is GPL-3.0. It must only ever run as a separate process and is never
  copied into this repository; this module imports it only in its own process, and the Django
  app never imports it (it talks HTTP to ``devtools.stripe_peer``, which talks HTTP to us).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import pickle
from pathlib import Path
from typing import Any

STATE_FILE_NAME = "localstripe.pickle"


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost`` or a loopback IP literal)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redirect_state(state_file: Path) -> None:
    """Point localstripe's pickle persistence at ``state_file`` instead of /tmp."""
    # GPL code, run in this process only; it ships no type information.
    from localstripe import resources  # noqa: PLC0415 - imported in the launcher process only

    def try_load_from_disk(store: Any) -> None:
        try:
            with state_file.open("rb") as f:
                old = pickle.load(f)  # noqa: S301 - our own state file, written by this process
        except FileNotFoundError:
            return
        store.clear()
        store.update(old)

    def dump_to_disk(store: Any) -> None:
        tmp = state_file.with_suffix(".tmp")
        with tmp.open("wb") as f:
            pickle.dump(store, f, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(state_file)  # a crash mid-write leaves the previous state, not half a pickle

    resources.Store.try_load_from_disk = try_load_from_disk
    resources.Store.dump_to_disk = dump_to_disk


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--state-dir", type=Path, required=True, help="folder for localstripe.pickle")
    parser.add_argument("--from-scratch", action="store_true", help="ignore a state file left by a previous run")
    args = parser.parse_args(argv)
    if not is_loopback(args.host):
        parser.error(f"--host must be a loopback address, not {args.host!r}")

    state_dir: Path = args.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    redirect_state(state_dir / STATE_FILE_NAME)

    from aiohttp import web  # noqa: PLC0415 - only this process needs aiohttp and localstripe
    from localstripe import server  # noqa: PLC0415

    if not args.from_scratch:
        server.store.try_load_from_disk()
    # localstripe reports webhook deliveries on this logger; keep them in our output.
    logging.basicConfig(level=logging.INFO, format="localstripe %(levelname)s %(message)s")
    web.run_app(server.app, host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
