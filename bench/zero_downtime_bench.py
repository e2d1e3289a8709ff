#!/usr/bin/env python3
"""Zero-downtime benchmark: Colors on the local platform's real worker node, under a steady load, while a rolling
release and then a rollback replace every pod. One run, same pods and URL, the quiet phase as the baseline:

  steady        the load alone (no release)                                  -> the baseline of the ratios
  rolling       deploy.yml of a second version (built from the same tree)    while the load runs
  rollback      rollback.yml back to the first version                       while the load runs

The load generator holds a fixed rate (--rate, default 60 requests/s) of GET / (the dashboard) at the Service's
NodePort on the host's address, from --workers threads. By default each request opens its own connection, so
kube-proxy picks a pod for every request (as for many clients); --keepalive reuses one connection per worker (as a
proxy would), which also shows what a pod's drain does to open connections. A failed request is a connection error,
a timeout (--timeout) or any status other than 200. Printed: requests, achieved rate, failed (goal 0), p50/p95/p99 and
each phase's p95 as a ratio of the steady phase's.

Run through `make bench-zero-downtime` (builds the image, starts the platform). Needs the worker node.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STATE = REPO / ".platform"
ENV = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
           PATH=os.pathsep.join([str(STATE / "bin"), str(Path(sys.executable).parent), os.environ["PATH"]]))
APP_VERSION = tomllib.loads((REPO / "app" / "pyproject.toml").read_text())["project"]["version"]


def sh(*argv: str) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, cwd=REPO, env=ENV, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"benchmark step failed: {' '.join(argv)}\n{result.stdout[-2500:]}\n{result.stderr[-1500:]}")
    return result


def playbook(*args: str) -> subprocess.CompletedProcess:
    return sh(str(Path(sys.executable).parent / "ansible-playbook"), *args)


class Load:
    """A fixed-rate load in the background: start(), then stop() returns what it measured."""

    def __init__(self, host: str, port: int, rate: float, workers: int, keepalive: bool, timeout: float) -> None:
        self.host, self.port, self.rate, self.keepalive, self.timeout = host, port, rate, keepalive, timeout
        self.lock = threading.Lock()
        self.next_slot = 0
        self.stopping = threading.Event()
        self.latencies: list[float] = []
        self.failures: dict[str, int] = {}
        self.threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(workers)]

    def start(self) -> Load:
        self.t0 = time.monotonic()
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> dict:
        self.stopping.set()
        for thread in self.threads:
            thread.join()
        elapsed = time.monotonic() - self.t0
        count = len(self.latencies) + sum(self.failures.values())
        ordered = sorted(self.latencies) or [float("nan")]

        def pct(p: float) -> float:
            return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

        return {"seconds": round(elapsed, 1), "requests": count, "rate": round(count / elapsed, 1),
                "failed": sum(self.failures.values()), "failures": dict(self.failures),
                "p50_ms": round(statistics.median(ordered) * 1000, 1), "p95_ms": round(pct(95), 1),
                "p99_ms": round(pct(99), 1), "max_ms": round(ordered[-1] * 1000, 1)}

    def _worker(self) -> None:
        conn = None
        while not self.stopping.is_set():
            with self.lock:
                slot = self.next_slot
                self.next_slot += 1
            delay = self.t0 + slot / self.rate - time.monotonic()
            if delay > 0 and self.stopping.wait(delay):
                break
            start = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                conn.request("GET", "/")
                response = conn.getresponse()
                response.read()
                outcome = None if response.status == 200 else f"HTTP {response.status}"
            except (OSError, http.client.HTTPException) as exc:
                outcome = type(exc).__name__
                conn.close()
                conn = None
            latency = time.monotonic() - start
            if not self.keepalive and conn is not None:
                conn.close()
                conn = None
            with self.lock:
                if outcome is None:
                    self.latencies.append(latency)
                else:
                    self.failures[outcome] = self.failures.get(outcome, 0) + 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=60, help="requests per second (default 60)")
    parser.add_argument("--workers", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--steady", type=float, default=20, help="seconds of the steady phase (default 20)")
    parser.add_argument("--settle", type=float, default=8,
                        help="seconds the load goes on after a release returns, while old pods drain (default 8)")
    parser.add_argument("--timeout", type=float, default=5, help="seconds before a request counts as failed")
    parser.add_argument("--keepalive", action="store_true", help="one kept-alive connection per worker")
    parser.add_argument("--timing", choices=["local", "staging"], default="local",
                        help="the pods' shutdown delay and graceful timeout: the local inventory's (role defaults) or "
                             "staging's and prod's (their drain behind the ALB)")
    args = parser.parse_args()
    timing = []
    if args.timing == "staging":
        import yaml

        staging = yaml.safe_load((REPO / "inventories" / "staging" / "group_vars" / "all" / "main.yml").read_text())
        keys = ("app_release_shutdown_delay_seconds", "app_release_graceful_timeout_seconds")
        timing = [arg for key in keys for arg in ("-e", f"{key}={staging[key]}")]
        # The load goes on until the last old pod has drained: its whole shutdown delay and graceful timeout.
        args.settle = max(args.settle, sum(staging[key] for key in keys))

    status = json.loads(sh(sys.executable, "localplatform/platformctl.py", "status").stdout)
    node = status["worker_node"]
    if not node["enabled"] or not status["components"]["kubelet"]["healthy"]:
        sys.exit(f"the worker node is not running ({'; '.join(node['blockers']) or 'see make status'}): "
                 "this benchmark needs real pods")
    second = f"{APP_VERSION}-bench.1"
    print(f"[bench] building {second} from the working tree (a second real image) and loading it", flush=True)
    sh(sys.executable, "app/build_image.py", "--version", second, "--load-worker-node")
    playbook("deploy.yml", "-i", "inventories/local", *timing)  # the first version, on the worker node
    service = json.loads(sh("kubectl", "--kubeconfig", str(STATE / "kubeconfig"), "-n", "colors", "get", "service",
                            "colors", "-o", "json").stdout)
    port = service["spec"]["ports"][0]["nodePort"]
    host = node["address"]
    mode = "kept-alive connections" if args.keepalive else "a new connection per request"
    print(f"[bench] load: {args.rate:g} requests/s of GET http://{host}:{port}/ from {args.workers} workers, {mode}; "
          f"shutdown timing: {args.timing} {' '.join(timing[1::2]) or '(role defaults)'}", flush=True)

    def phase(action=None) -> dict:
        load = Load(host, port, args.rate, args.workers, args.keepalive, args.timeout).start()
        if action is None:
            time.sleep(args.steady)
        else:
            action()
            time.sleep(args.settle)
        return load.stop()

    results = {
        "steady (baseline)": phase(),
        f"rolling release {APP_VERSION} -> {second}": phase(
            lambda: playbook("deploy.yml", "-i", "inventories/local", *timing, "-e", f"app_release_version={second}")),
        f"rollback {second} -> {APP_VERSION}": phase(
            lambda: playbook("rollback.yml", "-i", "inventories/local", *timing)),
    }
    base = results["steady (baseline)"]["p95_ms"]
    print(f"\n{'phase':<42} {'seconds':>7} {'requests':>8} {'req/s':>6} {'failed':>6} {'p50 ms':>7} {'p95 ms':>7} "
          f"{'p99 ms':>7} {'max ms':>7} {'p95 vs steady':>13}")
    for name, r in results.items():
        print(f"{name:<42} {r['seconds']:>7} {r['requests']:>8} {r['rate']:>6} {r['failed']:>6} {r['p50_ms']:>7} "
              f"{r['p95_ms']:>7} {r['p99_ms']:>7} {r['max_ms']:>7} {r['p95_ms'] / base:>12.2f}x")
        if r["failures"]:
            print(f"{'':<42} failures: {r['failures']}")
    failed = sum(r["failed"] for r in results.values())
    print(f"\nfailed requests in all phases: {failed} (goal 0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
