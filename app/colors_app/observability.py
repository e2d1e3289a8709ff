"""JSON logs with request ids, and the RED metrics (rate, errors, duration per route) for Prometheus."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
import traceback

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, request_id, the record's extra fields, and the stack
    trace of an exception in the same event (never spread over several lines)."""

    # Record attributes that are not extra fields (uvicorn adds color_message, a terminal-coloured copy of msg).
    _STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message", "taskName"}

    def format(self, record: logging.LogRecord) -> str:
        event = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if request_id.get():
            event["request_id"] = request_id.get()
        event.update({k: v for k, v in vars(record).items() if k not in self._STANDARD})
        if record.exc_info:
            event["error"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
            event["stack"] = "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(event, default=str)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # the app logs each request itself, with its id


class Metrics:
    """RED metrics per route template (never per raw path: bounded label values)."""

    def __init__(self, version: str, git_sha: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("colors_http_requests_total", "HTTP requests answered",
                                ["method", "route", "status"], registry=self.registry)
        self.errors = Counter("colors_http_request_errors_total", "HTTP requests answered with a 5xx status",
                              ["method", "route"], registry=self.registry)
        self.duration = Histogram("colors_http_request_duration_seconds", "Time to answer an HTTP request",
                                  ["method", "route"], registry=self.registry,
                                  buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.in_flight = Gauge("colors_http_requests_in_flight", "HTTP requests being answered",
                               registry=self.registry)
        self.ready = Gauge("colors_ready", "1 when /readyz answers 200", registry=self.registry)
        Gauge("colors_build_info", "Version of the running release", ["version", "git_sha"],
              registry=self.registry).labels(version, git_sha).set(1)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.duration.labels(method, route).observe(seconds)
        if status >= 500:
            self.errors.labels(method, route).inc()
