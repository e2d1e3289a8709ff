"""Where colors and palettes live: PostgreSQL in staging and production, memory for the local default.

Schema changes are expand/contract: a migration in migrations/ says which it is on its first line ("-- expand:" or
"-- contract:"). An expand migration only adds (tables, nullable columns, indexes), so the previous release runs on
the newer schema and a rollback never needs a down-migration. A contract migration removes or narrows what earlier
releases may use (the one running when it is applied must no longer use it: expand, release, then contract): once
it ran, no release older than it is run again - its migrate refuses, naming the migration, and the release engine
refuses a rollback past it (the ledger records it). The app is ready when the schema is at least the version it
needs (REQUIRED_SCHEMA), not exactly it.
"""

from __future__ import annotations

import json
import re
import time
from importlib import resources
from typing import Any, Protocol

CATALOG = json.loads(resources.files(__package__).joinpath("catalog.json").read_text())
MIGRATIONS = sorted((p.name, p.read_text()) for p in resources.files(__package__).joinpath("migrations").iterdir()
                    if p.name.endswith(".sql"))
REQUIRED_SCHEMA = 3
KNOWN_SCHEMA = max((int(name.split("_", 1)[0]) for name, _ in MIGRATIONS), default=0)


def kind_of(sql: str) -> str:
    """"contract" when the migration says so on its first line, else "expand"."""
    return "contract" if sql.lstrip().lower().startswith("-- contract") else "expand"


class SchemaAhead(RuntimeError):
    """The database holds a contract migration newer than this release: it cannot run on that schema."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(f"the database has {', '.join(names)}, not expand-only (contract) and newer than this "
                         f"release (migrations up to {KNOWN_SCHEMA}): this release cannot run on that schema; "
                         "release a version that includes it instead")
        self.names = names
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


class PaletteError(ValueError):
    """A palette that cannot be stored; the message says why."""


class Store(Protocol):
    def colors(self, query: str = "", family: str = "", limit: int = 500) -> list[dict[str, Any]]: ...
    def color(self, name: str) -> dict[str, Any] | None: ...
    def palettes(self) -> list[dict[str, Any]]: ...
    def add_palette(self, name: str, colors: list[str], author: str) -> dict[str, Any]: ...
    def ready(self) -> tuple[bool, str]: ...
    def close(self) -> None: ...


def _matches(color: dict[str, Any], query: str, family: str) -> bool:
    return (not query or query in color["name"] or query == color["hex"]) and (not family or color["family"] == family)


def _check_palette(name: str, colors: list[str], known: set[str]) -> None:
    if not NAME.match(name):
        raise PaletteError(f"palette name {name!r}: lower-case letters, digits and '-', at most 40")
    if not 2 <= len(colors) <= 12:
        raise PaletteError(f"a palette has 2 to 12 colors, got {len(colors)}")
    unknown = [c for c in colors if c not in known]
    if unknown:
        raise PaletteError(f"unknown colors: {', '.join(unknown)}")


class MemoryStore:
    """The catalog in memory (the local default runs without a database; palettes live until restart)."""

    def __init__(self) -> None:
        self._colors = {c["name"]: c for c in CATALOG["colors"]}
        self._palettes = {p["name"]: dict(p) for p in CATALOG["palettes"]}

    def colors(self, query: str = "", family: str = "", limit: int = 500) -> list[dict[str, Any]]:
        return [c for c in self._colors.values() if _matches(c, query, family)][:limit]

    def color(self, name: str) -> dict[str, Any] | None:
        return self._colors.get(name)

    def palettes(self) -> list[dict[str, Any]]:
        return sorted(self._palettes.values(), key=lambda p: p["name"])

    def add_palette(self, name: str, colors: list[str], author: str) -> dict[str, Any]:
        _check_palette(name, colors, set(self._colors))
        if name in self._palettes:
            raise PaletteError(f"palette {name} exists")
        self._palettes[name] = {"name": name, "colors": colors}
        return self._palettes[name]

    def ready(self) -> tuple[bool, str]:
        return True, "memory store"

    def close(self) -> None:
        pass


class PostgresStore:
    """PostgreSQL through a connection pool; ready when reachable and migrated to REQUIRED_SCHEMA or later."""

    def __init__(self, url: str) -> None:
        from psycopg_pool import ConnectionPool

        self._pool = ConnectionPool(url, min_size=1, max_size=8, open=False, timeout=5,
                                    kwargs={"connect_timeout": 3, "application_name": "colors"})
        self._pool.open(wait=False)
        self._ready_cache: tuple[float, tuple[bool, str]] = (0.0, (False, "not checked"))

    def _query(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        from psycopg.rows import dict_row

        with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def colors(self, query: str = "", family: str = "", limit: int = 500) -> list[dict[str, Any]]:
        return self._query(
            "SELECT name, hex, family FROM colors WHERE (%(q)s = '' OR strpos(name, %(q)s) > 0 OR hex = %(q)s)"
            " AND (%(f)s = '' OR family = %(f)s) ORDER BY name LIMIT %(n)s",
            {"q": query, "f": family, "n": limit})  # type: ignore[arg-type]

    def color(self, name: str) -> dict[str, Any] | None:
        rows = self._query("SELECT name, hex, family FROM colors WHERE name = %s", (name,))
        return rows[0] if rows else None

    def palettes(self) -> list[dict[str, Any]]:
        rows = self._query("SELECT p.name, array_agg(c.color ORDER BY c.position) AS colors FROM palettes p"
                           " JOIN palette_colors c ON c.palette = p.name GROUP BY p.name ORDER BY p.name")
        return [{"name": r["name"], "colors": list(r["colors"])} for r in rows]

    def add_palette(self, name: str, colors: list[str], author: str) -> dict[str, Any]:
        import psycopg

        known = {r["name"] for r in self._query("SELECT name FROM colors WHERE name = ANY(%s)", (colors,))}
        _check_palette(name, colors, known)
        try:
            with self._pool.connection() as conn, conn.transaction():
                conn.execute("INSERT INTO palettes (name, created_by) VALUES (%s, %s)", (name, author))
                for position, color in enumerate(colors):
                    conn.execute("INSERT INTO palette_colors (palette, position, color) VALUES (%s, %s, %s)",
                                 (name, position, color))
        except psycopg.errors.UniqueViolation:
            raise PaletteError(f"palette {name} exists") from None
        return {"name": name, "colors": colors}

    def ready(self) -> tuple[bool, str]:
        checked_at, verdict = self._ready_cache
        if time.monotonic() - checked_at < 1.0:
            return verdict
        try:
            version = self._query("SELECT coalesce(max(version), 0) AS v FROM schema_migrations")[0]["v"]
            verdict = ((True, f"schema {version}") if version >= REQUIRED_SCHEMA
                       else (False, f"schema {version} is older than the {REQUIRED_SCHEMA} this version needs"))
        except Exception as exc:
            verdict = (False, f"database unavailable: {type(exc).__name__}: {str(exc).strip()[:200]}")
        self._ready_cache = (time.monotonic(), verdict)
        return verdict

    def close(self) -> None:
        self._pool.close()


def migrate(url: str) -> list[str]:
    """Apply pending migrations (one transaction each, serialised by an advisory lock) and seed the catalog.
    Returns the migrations applied. Safe to run concurrently and repeatedly. Raises SchemaAhead, changing nothing,
    when the database holds a contract migration newer than this release's."""
    import psycopg

    applied = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                     " applied_at timestamptz NOT NULL DEFAULT now())")
        conn.execute("ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'expand'")
        ahead = [name for (name,) in conn.execute(
            "SELECT name FROM schema_migrations WHERE kind = 'contract' AND version > %s ORDER BY version",
            (KNOWN_SCHEMA,)).fetchall()]
        if ahead:
            raise SchemaAhead(ahead)
        for name, sql in MIGRATIONS:
            version = int(name.split("_", 1)[0])
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(4242)")
                if conn.execute("SELECT 1 FROM schema_migrations WHERE version = %s", (version,)).fetchone():
                    continue
                conn.execute(sql)
                conn.execute("INSERT INTO schema_migrations (version, name, kind) VALUES (%s, %s, %s)",
                             (version, name, kind_of(sql)))
                applied.append(name)
        with conn.transaction():
            for c in CATALOG["colors"]:
                conn.execute("INSERT INTO colors (name, hex, family) VALUES (%(name)s, %(hex)s, %(family)s)"
                             " ON CONFLICT (name) DO NOTHING", c)
            for p in CATALOG["palettes"]:
                if conn.execute("INSERT INTO palettes (name, created_by) VALUES (%s, 'catalog')"
                                " ON CONFLICT (name) DO NOTHING RETURNING name", (p["name"],)).fetchone():
                    for position, color in enumerate(p["colors"]):
                        conn.execute("INSERT INTO palette_colors (palette, position, color) VALUES (%s, %s, %s)",
                                     (p["name"], position, color))
    return applied
