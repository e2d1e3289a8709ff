"""Entry point: `colors-app` serves; `colors-app migrate` applies the schema migrations and seeds the catalog.

Shutdown on SIGTERM loses no request: /readyz turns 503 at once (load balancers and Kubernetes endpoints stop
sending new requests), the server keeps serving for COLORS_SHUTDOWN_DELAY_SECONDS while they notice, then
stops accepting, lets in-flight requests finish (up to COLORS_GRACEFUL_TIMEOUT_SECONDS) and exits 0.
A second SIGTERM or SIGINT exits at once.
"""

from __future__ import annotations

import logging
import sys
import threading

import uvicorn

from .config import EX_CONFIG, ConfigError, Settings
from .observability import configure_logging
from .store import MIGRATIONS, MemoryStore, PostgresStore, SchemaAhead, kind_of, migrate
from .web import create_app

log = logging.getLogger("colors")


class DrainingServer(uvicorn.Server):
    """uvicorn, with a readiness drain between SIGTERM and the stop of accepting connections."""

    def __init__(self, config: uvicorn.Config, app_state, delay: float) -> None:
        super().__init__(config)
        self.app_state = app_state
        self.delay = delay
        self.draining = False

    def handle_exit(self, sig: int, frame) -> None:
        if self.draining:  # a second signal: stop now
            super().handle_exit(sig, frame)
            return
        self.draining = True
        self.app_state.shutting_down = True
        log.info("shutdown requested: not ready, draining", extra={"signal": sig, "delay_seconds": self.delay})
        timer = threading.Timer(self.delay, lambda: setattr(self, "should_exit", True))
        timer.daemon = True
        timer.start()


def serve(settings: Settings) -> int:
    store = MemoryStore() if settings.store == "memory" else PostgresStore(settings.database_url)
    app = create_app(settings, store)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None, access_log=False,
                            timeout_graceful_shutdown=int(settings.graceful_timeout_seconds), lifespan="on",
                            server_header=False)
    server = DrainingServer(config, app.colors, settings.shutdown_delay_seconds)
    server.run()
    return 0 if server.started else 1


def _termination_message(result: dict) -> None:
    """What the migration did, as the container's termination message (the release reads it from the pod's status:
    the contract migrations it ran are recorded in the ledger, and no rollback goes back past them)."""
    import contextlib
    import json
    import os
    from pathlib import Path

    path = Path(os.environ.get("COLORS_TERMINATION_MESSAGE_PATH", "/dev/termination-log"))
    with contextlib.suppress(OSError):  # not in a pod (no such file, or not writable): the log line says the same
        path.write_text(json.dumps(result))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        configure_logging("info")
        log.error("configuration error: %s", exc)
        return EX_CONFIG
    configure_logging(settings.log_level)
    if argv[:1] == ["migrate"]:
        if settings.store != "postgres":
            log.error("configuration error: migrate needs COLORS_STORE=postgres")
            return EX_CONFIG
        import psycopg

        try:
            applied = migrate(settings.database_url)
        except (psycopg.Error, SchemaAhead) as exc:
            # One line, the last of the log: the kubelet keeps it as the termination message the release prints.
            log.error("migration failed: %s", " ".join(str(exc).split()))
            return 1
        contract = [name for name, sql in MIGRATIONS if name in applied and kind_of(sql) == "contract"]
        log.info("migrated", extra={"applied": applied, "contract": contract})
        _termination_message({"applied": applied, "contract": contract})
        return 0
    if argv:
        log.error("unknown command %s; allowed: migrate (or none to serve)", argv[0])
        return 2
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
