"""The Colors application in-process (memory store): API, health, readiness, metrics, logs, configuration."""

from __future__ import annotations

import json
import logging

import pytest
from colors_app.__main__ import main
from colors_app.config import EX_CONFIG, ConfigError, Settings
from colors_app.observability import JsonFormatter, request_id
from colors_app.store import MemoryStore
from colors_app.web import create_app
from starlette.testclient import TestClient

BASE_ENV = {"COLORS_STORE": "memory", "COLORS_API_KEY": "test-key", "COLORS_VERSION": "1.2.3",
            "COLORS_GIT_SHA": "abc123", "COLORS_BUILD_TIME": "2026-11-27T00:00:00Z"}


@pytest.fixture
def app():
    return create_app(Settings.from_env(BASE_ENV), MemoryStore())


@pytest.fixture
def client(app):
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_the_dashboard_lists_colors_and_palettes(client):
    page = client.get("/")
    assert page.status_code == 200
    assert page.text.count('class="swatch"') >= 100
    assert 'data-name="cornflowerblue"' in page.text
    assert "ocean" in page.text and "v1.2.3" in page.text


def test_the_dashboard_filters_by_family(client):
    page = client.get("/?family=blue")
    assert 'data-name="navy"' in page.text
    assert 'data-name="red"' not in page.text


def test_the_api_searches_colors(client):
    body = client.get("/api/colors", params={"q": "blue"}).json()
    names = [c["name"] for c in body["colors"]]
    assert body["count"] == len(names) >= 8
    assert all("blue" in n for n in names)
    assert client.get("/api/colors", params={"q": "#6495ed"}).json()["colors"][0]["name"] == "cornflowerblue"


def test_one_color_and_an_unknown_one(client):
    assert client.get("/api/colors/Teal").json() == {"name": "teal", "hex": "#008080", "family": "cyan"}
    missing = client.get("/api/colors/notacolor")
    assert missing.status_code == 404 and "notacolor" in missing.json()["error"]


def test_a_bad_limit_is_a_400_that_names_what_is_allowed(client):
    response = client.get("/api/colors", params={"limit": "many"})
    assert response.status_code == 400 and "1 to 500" in response.json()["error"]


def test_creating_a_palette_needs_the_api_key_and_valid_colors(client):
    body = {"name": "mine", "colors": ["red", "teal"]}
    assert client.post("/api/palettes", json=body).status_code == 401
    assert client.post("/api/palettes", json=body, headers={"x-api-key": "wrong"}).status_code == 401
    created = client.post("/api/palettes", json=body, headers={"x-api-key": "test-key"})
    assert created.status_code == 201
    assert "mine" in [p["name"] for p in client.get("/api/palettes").json()["palettes"]]
    again = client.post("/api/palettes", json=body, headers={"x-api-key": "test-key"})
    assert again.status_code == 400 and "exists" in again.json()["error"]
    bad = client.post("/api/palettes", json={"name": "x", "colors": ["red", "nope"]}, headers={"x-api-key": "test-key"})
    assert bad.status_code == 400 and "nope" in bad.json()["error"]


def test_health_readiness_and_version(client, app):
    assert client.get("/healthz").json() == {"status": "alive"}
    assert client.get("/readyz").status_code == 200
    assert client.get("/version").json() == {"version": "1.2.3", "git_sha": "abc123",
                                             "build_time": "2026-11-27T00:00:00Z"}
    app.colors.shutting_down = True
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["reason"] == "shutting down"
    assert client.get("/healthz").status_code == 200, "liveness stays up while draining"


def test_readiness_follows_the_store(client, app, monkeypatch):
    monkeypatch.setattr(app.colors.store, "ready", lambda: (False, "database unavailable: refused"))
    response = client.get("/readyz")
    assert response.status_code == 503 and "database unavailable" in response.json()["reason"]


def test_metrics_are_red_per_route(client):
    client.get("/api/colors", params={"q": "red"})
    client.get("/api/colors/teal")
    client.get("/api/colors/nope")
    text = client.get("/metrics").text
    assert 'colors_http_requests_total{method="GET",route="/api/colors",status="200"} 1.0' in text
    assert 'colors_http_requests_total{method="GET",route="/api/colors/{name}",status="404"} 1.0' in text
    assert 'colors_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/api/colors"}' in text
    assert "colors_http_request_errors_total" in text
    assert 'colors_build_info{git_sha="abc123",version="1.2.3"} 1.0' in text


def test_an_unhandled_error_is_one_log_event_with_its_stack_and_a_500_with_the_request_id(app, client, monkeypatch,
                                                                                          caplog):
    def boom(*args, **kwargs):
        raise RuntimeError("store exploded")

    monkeypatch.setattr(app.colors.store, "color", boom)
    with caplog.at_level(logging.INFO, logger="colors"):
        response = client.get("/api/colors/teal", headers={"x-request-id": "req-42"})
    assert response.status_code == 500
    assert response.json() == {"error": "internal error", "request_id": "req-42"}
    assert response.headers["x-request-id"] == "req-42"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    event = json.loads(JsonFormatter().format(errors[0]))
    assert event["level"] == "error" and "store exploded" in event["stack"] and "Traceback" in event["stack"]
    errors_metric = 'colors_http_request_errors_total{method="GET",route="/api/colors/{name}"} 1.0'
    assert errors_metric in client.get("/metrics").text


def test_every_request_is_logged_as_json_with_its_request_id(client, caplog):
    with caplog.at_level(logging.INFO, logger="colors"):
        response = client.get("/api/colors", headers={"x-request-id": "abc-1"})
    assert response.headers["x-request-id"] == "abc-1"
    record = next(r for r in caplog.records if r.getMessage() == "request")
    token = request_id.set("abc-1")
    try:
        event = json.loads(JsonFormatter().format(record))
    finally:
        request_id.reset(token)
    assert event | {"ts": None} == event | {"ts": None}  # valid JSON object
    assert event["request_id"] == "abc-1" and event["route"] == "/api/colors" and event["status"] == 200


def test_a_generated_request_id_is_returned(client):
    assert len(client.get("/api/colors").headers["x-request-id"]) == 32


@pytest.mark.parametrize(("env", "named"), [
    ({"COLORS_STORE": "memory"}, "COLORS_API_KEY is not set"),
    ({"COLORS_STORE": "postgres", "COLORS_API_KEY": "k"}, "COLORS_DATABASE_URL is not set"),
    ({"COLORS_STORE": "mysql", "COLORS_API_KEY": "k"},
     "COLORS_STORE='mysql' is not supported; allowed: memory, postgres"),
    ({"COLORS_STORE": "memory", "COLORS_API_KEY": "k", "COLORS_PORT": "http"}, "COLORS_PORT='http' is not a int"),
    ({"COLORS_STORE": "memory", "COLORS_API_KEY_FILE": "/nonexistent/key"}, "COLORS_API_KEY_FILE=/nonexistent/key"),
])
def test_a_missing_or_bad_setting_is_named(env, named):
    with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(env)


def test_a_secret_file_wins_over_the_variable(tmp_path):
    (tmp_path / "key").write_text("from-file\n")
    settings = Settings.from_env({"COLORS_STORE": "memory", "COLORS_API_KEY": "from-env",
                                  "COLORS_API_KEY_FILE": str(tmp_path / "key")})
    assert settings.api_key == "from-file"


def test_the_process_exits_78_naming_the_missing_setting(monkeypatch, capsys):
    for name in ("COLORS_API_KEY", "COLORS_API_KEY_FILE", "COLORS_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLORS_STORE", "memory")
    assert main([]) == EX_CONFIG
    event = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert event["level"] == "error" and "COLORS_API_KEY is not set" in event["msg"]


def test_the_local_inventory_deploys_the_version_the_image_is_built_with():
    import tomllib

    import yaml
    from helpers import REPO

    version = tomllib.loads((REPO / "app" / "pyproject.toml").read_text())["project"]["version"]
    local = yaml.safe_load((REPO / "inventories" / "local" / "group_vars" / "all" / "main.yml").read_text())
    assert local["app_release_version"] == version


def test_every_response_carries_the_security_headers(client):
    for path in ("/", "/api/colors", "/nope"):
        headers = client.get(path).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"


class _HangingStore(MemoryStore):
    """A store whose readiness check waits, as one does while its database does not answer."""

    def __init__(self) -> None:
        super().__init__()
        import threading
        self.entered, self.release = threading.Event(), threading.Event()

    def ready(self):
        self.entered.set()
        self.release.wait(30)
        return False, "database unreachable"


def test_liveness_answers_while_readiness_waits_for_the_database():
    import threading
    store = _HangingStore()
    app = create_app(Settings.from_env(BASE_ENV), store)
    results = {}
    with TestClient(app) as client:
        readiness = threading.Thread(target=lambda: results.setdefault("ready", client.get("/readyz")))
        readiness.start()
        assert store.entered.wait(10)
        liveness = threading.Thread(target=lambda: results.setdefault("alive", client.get("/healthz")))
        liveness.start()
        liveness.join(10)
        answered_while_waiting = not liveness.is_alive() and not store.release.is_set()
        store.release.set()
        readiness.join(10)
    assert answered_while_waiting, "/healthz waited for the store's readiness check"
    assert results["alive"].status_code == 200
    assert results["ready"].status_code == 503 and results["ready"].json()["reason"] == "database unreachable"


def test_a_draining_app_asks_clients_to_close_their_connections(app, client):
    assert "close" not in client.get("/").headers.get("connection", "")
    app.colors.shutting_down = True  # what SIGTERM does first
    response = client.get("/")
    assert response.status_code == 200 and response.headers["connection"] == "close"
    assert client.get("/readyz").status_code == 503


def test_a_failed_migration_exits_1_with_one_line_naming_the_error(monkeypatch, capsys):
    """The last log line is what the release prints (the migration pod's termination message)."""
    import socket

    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("COLORS_STORE", "postgres")
    monkeypatch.setenv("COLORS_API_KEY", "k")
    monkeypatch.setenv("COLORS_DATABASE_URL", f"postgresql://colors@127.0.0.1:{port}/colors?connect_timeout=2")
    assert main(["migrate"]) == 1
    event = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert event["level"] == "error" and event["msg"].startswith("migration failed: ")
    assert str(port) in event["msg"] and "\n" not in event["msg"]
