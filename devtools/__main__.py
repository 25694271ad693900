"""``python -m devtools``: the commands behind ``make run`` and ``make test``.

* ``run``: provision PostgreSQL and Redis (embedded unless ``DATABASE_URL`` / ``REDIS_URL``
  are set), migrate as the owner role, load the demo data, then serve on 127.0.0.1:8000 with a
  Celery worker. Ctrl-C stops the children, then the embedded servers.
* ``manage ARGS...``: ``manage.py ARGS`` in the development environment.
* ``test-manage ARGS...``: ``manage.py ARGS`` in the test environment (used for
  ``makemigrations --check --dry-run`` in ``make test``).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from types import FrameType

from devtools.provision import BASE_DIR, Environment, data_dir, prepare_environment

MANAGE = [sys.executable, str(BASE_DIR / "manage.py")]
_STOP_TIMEOUT_SECONDS = 15


def _child_env(environment: Environment) -> dict[str, str]:
    child = dict(os.environ)
    child.update(environment.variables)
    child.setdefault("PAYMENTER_ENV", "development")
    if child["PAYMENTER_ENV"] == "development":
        child.setdefault("DEBUG", "true")
    return child


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each child's process group (runserver's reloader, Celery's pool), then wait."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_TIMEOUT_SECONDS
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def run() -> int:
    # Explicitly, because a shell starting us in the background leaves SIGINT ignored.
    signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    environment = prepare_environment(test=False)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        env = _child_env(environment)
        for note in environment.notes:
            print(f"[devtools] {note}", flush=True)
        subprocess.run([*MANAGE, "migrate", "--database", "owner", "--noinput"], env=env, check=True)
        subprocess.run([*MANAGE, "load_demo_data"], env=env, check=True)
        schedule = data_dir() / "celerybeat-schedule"
        commands = [
            [*MANAGE, "runserver", "127.0.0.1:8000"],
            # -B runs beat inside the worker: fine for one developer machine, never in production.
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "paymenter",
                "worker",
                "--beat",
                "--schedule",
                str(schedule),
                "--concurrency",
                "2",
                "--loglevel",
                "INFO",
            ],
        ]
        # Own process groups: Ctrl-C reaches only this launcher, which stops children in order.
        processes = [subprocess.Popen(command, env=env, start_new_session=True) for command in commands]
        print(
            "[devtools] serving http://127.0.0.1:8000/ (admin: /admin/) with a Celery worker; Ctrl-C stops all",
            flush=True,
        )
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\n[devtools] stopping", flush=True)
        return 0
    except subprocess.CalledProcessError as exc:
        print(f"[devtools] {exc}", file=sys.stderr, flush=True)
        return exc.returncode or 1
    else:
        print("[devtools] a child process exited; stopping the rest", file=sys.stderr, flush=True)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the cleanup
        _stop(processes)
        environment.stop()


def manage(arguments: list[str], *, test: bool) -> int:
    environment = prepare_environment(test=test)
    try:
        return subprocess.run([*MANAGE, *arguments], env=_child_env(environment), check=False).returncode
    finally:
        environment.stop(persist_redis=not test)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="serve the app with a Celery worker (make run)")
    for name in ("manage", "test-manage"):
        where = "test" if name == "test-manage" else "development"
        sub = commands.add_parser(name, help=f"manage.py in the {where} environment")
        sub.add_argument("arguments", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "run":
        return run()
    return manage(args.arguments, test=args.command == "test-manage")


if __name__ == "__main__":
    sys.exit(main())
