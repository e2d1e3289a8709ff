"""The Colors application on a real PostgreSQL (Debian's server, started for the test): migrations are
expand-only and idempotent, the app serves from the database, and an older release keeps working (and ready) on a
newer schema, so a rollback never needs a down-migration."""

from __future__ import annotations

import re

import pytest
from colors_app.config import Settings
from colors_app.store import MIGRATIONS, REQUIRED_SCHEMA, PostgresStore, SchemaAhead, kind_of, migrate
from colors_app.web import create_app
from helpers import postgres_server
from starlette.testclient import TestClient

# Statements that remove or narrow what a running (older) release relies on: only a contract migration may have them.
CONTRACTING = re.compile(
    r"\b(DROP\s+(TABLE|COLUMN|INDEX)|RENAME|ALTER\s+COLUMN\s+\w+\s+(TYPE|SET\s+NOT\s+NULL))\b", re.IGNORECASE)



@pytest.fixture(scope="module")
def postgres_url():
    with postgres_server() as (url, _, _):
        yield url


def _settings(url: str) -> Settings:
    return Settings.from_env({"COLORS_STORE": "postgres", "COLORS_DATABASE_URL": url, "COLORS_API_KEY": "k"})


def test_every_migration_only_expands_unless_it_says_it_contracts():
    assert len(MIGRATIONS) >= REQUIRED_SCHEMA
    for name, sql in MIGRATIONS:
        code = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
        assert not CONTRACTING.search(code) or kind_of(sql) == "contract", f"{name} removes or narrows schema"
        assert sql.lstrip().lower().startswith(("-- expand", "-- contract")), f"{name} does not say its kind"


def test_migrations_apply_once_and_seed_the_catalog(postgres_url):
    first = migrate(postgres_url)
    assert first == [name for name, _ in MIGRATIONS]
    assert migrate(postgres_url) == [], "a second run applies nothing"
    store = PostgresStore(postgres_url)
    try:
        assert len(store.colors()) >= 100
        assert store.ready() == (True, f"schema {len(MIGRATIONS)}")
    finally:
        store.close()


def test_the_app_serves_colors_and_stores_palettes_in_postgres(postgres_url):
    migrate(postgres_url)
    app = create_app(_settings(postgres_url), PostgresStore(postgres_url))
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
        assert client.get("/api/colors/teal").json()["hex"] == "#008080"
        created = client.post("/api/palettes", json={"name": "pg-test", "colors": ["navy", "gold"]},
                              headers={"x-api-key": "k", "x-author": "pytest"})
        assert created.status_code == 201, created.text
    store = PostgresStore(postgres_url)
    try:
        assert {"name": "pg-test", "colors": ["navy", "gold"]} in store.palettes(), "the palette was not persisted"
    finally:
        store.close()


def test_an_older_release_stays_ready_on_a_newer_expanded_schema(postgres_url):
    """A rollback: the schema is already at the next release's version (one more expand migration)."""
    import psycopg

    migrate(postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE colors ADD COLUMN IF NOT EXISTS tags text[]")
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (99, '0099_next_release.sql')"
                     " ON CONFLICT DO NOTHING")
    app = create_app(_settings(postgres_url), PostgresStore(postgres_url))
    with TestClient(app) as client:
        assert client.get("/readyz").json() == {"ready": True, "reason": "schema 99"}
        assert client.get("/api/colors", params={"q": "blue"}).json()["count"] >= 8


def test_an_older_release_refuses_a_schema_a_newer_contract_migration_changed(postgres_url):
    """A release of a version older than a contract migration: its migrate refuses, naming it, and changes nothing."""
    import psycopg

    migrate(postgres_url)
    conn = psycopg.connect(postgres_url, autocommit=True)
    kinds = dict(conn.execute("SELECT name, kind FROM schema_migrations").fetchall())
    assert {kinds[name] for name, _ in MIGRATIONS} == {"expand"}
    conn.execute("INSERT INTO schema_migrations (version, name, kind)"
                 " VALUES (98, '0098_contract_drop.sql', 'contract')")
    try:
        before = conn.execute("SELECT version, name, kind FROM schema_migrations ORDER BY version").fetchall()
        with pytest.raises(SchemaAhead, match=r"the database has 0098_contract_drop.sql, not expand-only"):
            migrate(postgres_url)
        assert conn.execute("SELECT version, name, kind FROM schema_migrations ORDER BY version").fetchall() == before
    finally:
        conn.execute("DELETE FROM schema_migrations WHERE version = 98")
        conn.close()


def test_a_database_that_is_not_migrated_keeps_the_app_unready(postgres_url):
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE colors_empty")
    app = create_app(_settings(postgres_url.replace("/colors", "/colors_empty")),
                     PostgresStore(postgres_url.replace("/colors", "/colors_empty")))
    with TestClient(app) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert "database unavailable" in response.json()["reason"] or "older than" in response.json()["reason"]


def test_an_unreachable_database_is_named_by_readiness():
    app = create_app(_settings("postgresql://colors@127.0.0.1:1/colors"),
                     PostgresStore("postgresql://colors@127.0.0.1:1/colors"))
    with TestClient(app) as client:
        response = client.get("/readyz")
    assert response.status_code == 503 and "database unavailable" in response.json()["reason"]
