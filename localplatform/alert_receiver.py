#!/usr/bin/env python3
"""The local platform's notification sink: Alertmanager's webhook receivers post here (as to a pager or a chat).

POST /<receiver>         stores the Alertmanager webhook payload with the receiver name and the time received
GET  /notifications      every stored notification, oldest first (?receiver=page, ?since=<unix seconds>)
GET  /healthz            200

Notifications are appended to a JSON-lines file (--store), so they survive a restart of the receiver.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

LOCK = threading.Lock()


def make_handler(store: Path):
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            receiver = urlparse(self.path).path.strip("/")
            try:
                payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            except (ValueError, json.JSONDecodeError):
                self._reply(400, {"error": "the body is not JSON"})
                return
            entry = {"receiver": receiver, "received": time.time(), "payload": payload}
            with LOCK, store.open("a") as f:
                f.write(json.dumps(entry) + "\n")
            self._reply(200, {"stored": True})

        def do_GET(self):
            url = urlparse(self.path)
            if url.path == "/healthz":
                self._reply(200, {"ok": True})
                return
            if url.path != "/notifications":
                self._reply(404, {"error": "GET /notifications or /healthz"})
                return
            query = parse_qs(url.query)
            since = float(query.get("since", ["0"])[0])
            receiver = query.get("receiver", [None])[0]
            with LOCK:
                lines = store.read_text().splitlines() if store.exists() else []
            entries = [e for e in map(json.loads, lines)
                       if e["received"] >= since and (receiver is None or e["receiver"] == receiver)]
            self._reply(200, entries)

        def log_message(self, *args) -> None:
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:29094")
    parser.add_argument("--store", type=Path, required=True)
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    args.store.parent.mkdir(parents=True, exist_ok=True)
    ThreadingHTTPServer((host, int(port)), make_handler(args.store)).serve_forever()


if __name__ == "__main__":
    main()
