"""The one object that reads the process environment.

Every setting that comes from the environment is read here, through ``env``, so that
``.env.example`` and this module together are the complete list of knobs.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Mapping
from enum import StrEnum


class Mode(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class ImproperlyConfiguredEnv(RuntimeError):
    """A required variable is missing or malformed; the process must not start."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class Env:
    def __init__(self, environ: Mapping[builtins.str, builtins.str] | None = None) -> None:
        self._environ = environ if environ is not None else os.environ

    @property
    def mode(self) -> Mode:
        raw = self._environ.get("PAYMENTER_ENV", Mode.DEVELOPMENT.value).strip().lower()
        try:
            return Mode(raw)
        except ValueError as exc:
            raise ImproperlyConfiguredEnv(
                f"PAYMENTER_ENV must be one of {[m.value for m in Mode]}, got {raw!r}"
            ) from exc

    @property
    def is_production(self) -> builtins.bool:
        return self.mode is Mode.PRODUCTION

    def str(
        self, name: builtins.str, default: builtins.str | None = None, *, dev_default: builtins.str | None = None
    ) -> builtins.str:
        """Read a string; ``dev_default`` applies only outside production.

        A variable with neither a value nor an applicable default is a start-up error, so
        production cannot silently run on a development secret.
        """
        value = self._environ.get(name)
        if value is not None and value != "":
            return value
        if dev_default is not None and not self.is_production:
            return dev_default
        if default is not None:
            return default
        raise ImproperlyConfiguredEnv(f"environment variable {name} is required")

    def optional(self, name: builtins.str) -> builtins.str | None:
        value = self._environ.get(name)
        return value if value else None

    def bool(self, name: builtins.str, default: builtins.bool) -> builtins.bool:
        raw = self._environ.get(name)
        if raw is None:
            return default
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ImproperlyConfiguredEnv(f"{name} must be a boolean, got {raw!r}")

    def int(self, name: builtins.str, default: builtins.int) -> builtins.int:
        raw = self._environ.get(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError as exc:
            raise ImproperlyConfiguredEnv(f"{name} must be an integer, got {raw!r}") from exc

    def list(
        self, name: builtins.str, default: builtins.list[builtins.str] | None = None
    ) -> builtins.list[builtins.str]:
        raw = self._environ.get(name)
        if raw is None or raw.strip() == "":
            return list(default or [])
        return [item.strip() for item in raw.split(",") if item.strip()]


env = Env()
