"""The Colors web application: dashboard, JSON API, health, readiness, metrics and version."""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field

from jinja2 import Environment, PackageLoader, select_autoescape
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Match, Mount, Route
from starlette.staticfiles import StaticFiles

from .config import Settings
from .observability import Metrics, request_id
from .store import PaletteError, Store

log = logging.getLogger("colors")
# Sent with every response. Inline style attributes carry the swatch colours, hence 'unsafe-inline' for styles only.
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                                 b"object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
TEMPLATES = Environment(loader=PackageLoader("colors_app"), autoescape=select_autoescape())


@dataclass
class State:
    """What readiness depends on. `shutting_down` flips on SIGTERM, before the server stops accepting."""

    settings: Settings
    store: Store
    metrics: Metrics
    shutting_down: bool = False
    started: float = field(default_factory=time.monotonic)


def create_app(settings: Settings, store: Store) -> Starlette:
    """The app. Handlers that touch the store are plain functions, which Starlette runs in its thread pool: a
    database that hangs must not stall the event loop, or /healthz stops answering and the kubelet restarts pods
    that only wait for their database (found when the never-ready drill ran on a real kubelet)."""
    state = State(settings, store, Metrics(settings.version, settings.git_sha))

    def dashboard(request: Request) -> HTMLResponse:
        family = request.query_params.get("family", "")
        html = TEMPLATES.get_template("dashboard.html").render(
            colors=store.colors(family=family), palettes=store.palettes(), version=settings.version,
            families=sorted({c["family"] for c in store.colors()}), family=family)
        return HTMLResponse(html)

    def list_colors(request: Request) -> JSONResponse:
        query = request.query_params.get("q", "").strip().lower()
        family = request.query_params.get("family", "").strip().lower()
        try:
            limit = min(max(int(request.query_params.get("limit", "500")), 1), 500)
        except ValueError:
            return JSONResponse({"error": "limit must be a whole number from 1 to 500"}, status_code=400)
        colors = store.colors(query, family, limit)
        return JSONResponse({"count": len(colors), "colors": colors})

    def get_color(request: Request) -> JSONResponse:
        color = store.color(request.path_params["name"].lower())
        if color is None:
            return JSONResponse({"error": f"no color named {request.path_params['name']}"}, status_code=404)
        return JSONResponse(color)

    def list_palettes(request: Request) -> JSONResponse:
        return JSONResponse({"palettes": store.palettes()})

    async def create_palette(request: Request) -> JSONResponse:
        if not secrets.compare_digest(request.headers.get("x-api-key", ""), settings.api_key):
            return JSONResponse({"error": "a valid X-API-Key header is required"}, status_code=401)
        try:
            body = await request.json()
            palette = await run_in_threadpool(store.add_palette, str(body["name"]), [str(c) for c in body["colors"]],
                                              request.headers.get("x-author", "api"))
        except (ValueError, KeyError, TypeError) as exc:
            message = str(exc) if isinstance(exc, PaletteError) else "body must be {\"name\": ..., \"colors\": [...]}"
            return JSONResponse({"error": message}, status_code=400)
        log.info("palette created", extra={"palette": palette["name"]})
        return JSONResponse(palette, status_code=201)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "alive"})

    def readyz(request: Request) -> JSONResponse:
        if state.shutting_down:
            ready, reason = False, "shutting down"
        else:
            ready, reason = store.ready()
        state.metrics.ready.set(1 if ready else 0)
        return JSONResponse({"ready": ready, "reason": reason}, status_code=200 if ready else 503)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def version(request: Request) -> JSONResponse:
        return JSONResponse({"version": settings.version, "git_sha": settings.git_sha,
                             "build_time": settings.build_time})

    routes = [
        Route("/", dashboard),
        Route("/api/colors", list_colors),
        Route("/api/colors/{name}", get_color),
        Route("/api/palettes", list_palettes, methods=["GET"]),
        Route("/api/palettes", create_palette, methods=["POST"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Route("/version", version),
        Mount("/static", StaticFiles(packages=[("colors_app", "static")]), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        log.info("started", extra={"version": settings.version, "git_sha": settings.git_sha, "store": settings.store})
        yield
        store.close()
        log.info("stopped", extra={"uptime_seconds": round(time.monotonic() - state.started, 1)})

    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": "internal error", "request_id": request_id.get()}, status_code=500)

    # Starlette answers an unhandled error with internal_error and re-raises it to RequestMiddleware, which logs it.
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={500: internal_error})
    return RequestMiddleware(app, state)


class RequestMiddleware:
    """Request id (X-Request-ID in and out), one JSON log line per request, RED metrics, and one error event
    with its stack trace for an unhandled exception (answered 500 with the request id)."""

    def __init__(self, app: Starlette, state: State) -> None:
        self.app = app
        self.colors = state  # what readiness depends on: the server flips colors.shutting_down on SIGTERM

    def __getattr__(self, name: str):
        return getattr(self.app, name)

    def _route(self, scope) -> str:
        for route in self.app.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return getattr(route, "path", "") or "other"
        return "unmatched"

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        rid = headers.get(b"x-request-id", b"").decode()[:64] or uuid.uuid4().hex
        token = request_id.set(rid)
        route, start, status, answered = self._route(scope), time.perf_counter(), 500, False
        metrics = self.colors.metrics
        metrics.in_flight.inc()

        async def send_with_id(message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status, answered = message["status"], True
                message.setdefault("headers", []).extend([(b"x-request-id", rid.encode()), *SECURITY_HEADERS])
                if self.colors.shutting_down:
                    # Draining: the client closes its kept-alive connection after this answer and reconnects
                    # (through the Service, to a pod that stays), instead of sending its next request on a
                    # connection this pod is about to close.
                    message["headers"].append((b"connection", b"close"))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error", extra={"method": scope["method"], "path": scope["path"]})
            if not answered:
                response = JSONResponse({"error": "internal error", "request_id": rid}, status_code=500)
                await response(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - start
            metrics.in_flight.dec()
            metrics.observe(scope["method"], route, status, seconds)
            if route not in ("/healthz", "/readyz", "/metrics"):
                log.info("request", extra={"method": scope["method"], "path": scope["path"], "route": route,
                                           "status": status, "duration_ms": round(seconds * 1000, 2)})
            request_id.reset(token)
