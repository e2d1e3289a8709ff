"""Fixtures of the integration tests that run Colors on the local platform's real worker node."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from helpers import REPO, ansible_playbook, run


@pytest.fixture(scope="module")
def worker_node():
    """The node as `make up` reports it; a host that cannot run it fails here, naming why (COLORS_WORKER_NODE=off
    is the only way to skip these tests: the kwok-only platform)."""
    if os.environ.get("COLORS_WORKER_NODE", "on").lower() in ("off", "0", "false", "no"):
        pytest.skip("COLORS_WORKER_NODE=off: the platform runs kwok-only")
    status = json.loads(run(["python", "localplatform/platformctl.py", "status"]).stdout)
    node = status["worker_node"]
    assert node["enabled"], f"the worker node cannot run on this host: {node['blockers']}"
    engine = ["network-policy"] if node["network_policy"]["enabled"] else []
    for name in ("containerd-node", "kubelet", "kube-proxy", *engine):
        assert status["components"][name]["healthy"], f"{name} is not running: see {status['components'][name]['log']}"
    return node


@pytest.fixture(scope="module")
def released(k8s):
    """Colors deployed as `make deploy` does it (the inventory's version, whose image `make image` loaded)."""
    result = ansible_playbook("deploy.yml", "-i", "inventories/local")
    assert result.returncode == 0, result.stdout[-3000:]
    return result


@pytest.fixture(scope="module")
def execution_environment() -> Path:
    """The operations toolchain's Python environment (the EE's requirement set), installed as `make` installs it."""
    made = run(["make", "--no-print-directory", "ops-toolchain"], timeout=900)
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    key = hashlib.sha256((REPO / "requirements" / "runtime.txt").read_bytes()).hexdigest()[:12]
    venv = Path(os.environ.get("COLORS_CACHE_DIR", Path.home() / ".cache" / "colors-deploy")) / f"ops-{key}"
    assert (venv / "bin" / "ansible-playbook").exists(), venv
    return venv


@pytest.fixture
def webhook():
    """A chat webhook receiver on loopback: its URL (a secret path) and the messages it received."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hooks/colors-secret-path", received
    server.shutdown()
