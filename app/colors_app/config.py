"""Configuration from environment variables and mounted secret files.

Every setting is read once at start. A required setting that is missing or malformed stops the process with exit
code 78 (EX_CONFIG) and one line naming the setting: a release with a broken configuration fails its first
readiness probe instead of serving wrongly.

Secrets can come from a file (a mounted Kubernetes Secret): `COLORS_API_KEY_FILE=/run/secrets/colors/api_key`
wins over `COLORS_API_KEY`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

EX_CONFIG = 78
STORES = ("memory", "postgres")


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it and what is allowed."""


@dataclass(frozen=True)
class Settings:
    version: str
    git_sha: str
    build_time: str
    host: str
    port: int
    store: str
    database_url: str
    api_key: str
    shutdown_delay_seconds: float
    graceful_timeout_seconds: float
    log_level: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        store = env.get("COLORS_STORE", "postgres")
        if store not in STORES:
            raise ConfigError(f"COLORS_STORE={store!r} is not supported; allowed: {', '.join(STORES)}")
        return cls(
            version=env.get("COLORS_VERSION", "0.0.0-dev"),
            git_sha=env.get("COLORS_GIT_SHA", "unknown"),
            build_time=env.get("COLORS_BUILD_TIME", "unknown"),
            host=env.get("COLORS_HOST", "0.0.0.0"),  # noqa: S104 # nosec B104 - a container listens on all its interfaces
            port=_number(env, "COLORS_PORT", "8080", int, 1, 65535),
            store=store,
            database_url=_secret(env, "COLORS_DATABASE_URL") if store == "postgres" else "",
            api_key=_secret(env, "COLORS_API_KEY"),
            shutdown_delay_seconds=_number(env, "COLORS_SHUTDOWN_DELAY_SECONDS", "5", float, 0, 120),
            graceful_timeout_seconds=_number(env, "COLORS_GRACEFUL_TIMEOUT_SECONDS", "20", float, 1, 600),
            log_level=env.get("COLORS_LOG_LEVEL", "info").lower(),
        )


def _secret(env: Mapping[str, str], name: str) -> str:
    """A required secret from NAME_FILE (a mounted secret) or NAME."""
    path = env.get(f"{name}_FILE")
    if path:
        try:
            value = Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE={path} cannot be read ({exc.strerror}); mount the secret there") from exc
        if not value:
            raise ConfigError(f"{name}_FILE={path} is empty")
        return value
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is not set: set it, or {name}_FILE to a file holding it (a mounted secret)")
    return value


def _number(env: Mapping[str, str], name: str, default: str, kind: type, low: float, high: float):
    raw = env.get(name, default)
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a {kind.__name__}; allowed: {low} to {high}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={raw} is out of range; allowed: {low} to {high}")
    return value
