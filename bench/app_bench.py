#!/usr/bin/env python3
"""The Colors container under load: `make bench-app` (about 1 minute).

1. Throughput of one container (memory store) with hey: requests/s and p95 of the JSON API beside the
   framework's floor, /healthz, in the same run, as ratios.
2. SIGTERM under load: two containers behind haproxy, which health-checks /readyz every 250 ms as a Kubernetes
   Service or an ALB target group would. One container gets SIGTERM mid-load; hey counts failed requests.
   Baseline in the same run: the same with COLORS_SHUTDOWN_DELAY_SECONDS=0 (stop accepting at once, as a
   server without a readiness drain does).
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VERSION = tomllib.loads((REPO / "app" / "pyproject.toml").read_text())["project"]["version"]
IMAGE = f"localhost/colors:{VERSION}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 # nosec B310 - loopback URL
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"{url} did not turn ready within {timeout}s")


def start_container(delay: float) -> tuple[str, int]:
    port = free_port()
    name = f"colors-bench-{port}"
    env = {"COLORS_STORE": "memory", "COLORS_API_KEY": "bench", "COLORS_LOG_LEVEL": "warning",
           "COLORS_SHUTDOWN_DELAY_SECONDS": str(delay)}
    subprocess.run(["docker", "run", "--detach", "--name", name, "--read-only", "--publish", f"127.0.0.1:{port}:8080",
                    *(x for k, v in env.items() for x in ("--env", f"{k}={v}")), IMAGE],
                   check=True, capture_output=True)
    wait_ready(f"http://127.0.0.1:{port}/readyz")
    return name, port


def remove(*names: str) -> None:
    subprocess.run(["docker", "rm", "--force", *names], capture_output=True, check=False)


def hey(url: str, seconds: int, concurrency: int) -> dict[str, float]:
    out = subprocess.run(["hey", "-z", f"{seconds}s", "-c", str(concurrency), url], capture_output=True, text=True,
                         check=True).stdout
    statuses = {int(code): int(n) for code, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)}
    errors = sum(int(n) for n in re.findall(r"^\s+\[(\d+)\]\s+\w+", out.split("Error distribution:")[-1], re.M)) \
        if "Error distribution:" in out else 0
    p95 = re.search(r"95%+ in ([\d.]+) secs", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    failed = sum(n for code, n in statuses.items() if code != 200) + errors
    return {"rps": float(rps.group(1)) if rps else 0.0, "p95_ms": float(p95.group(1)) * 1000 if p95 else 0.0,
            "total": sum(statuses.values()) + errors, "failed": failed}


def throughput() -> None:
    name, port = start_container(delay=0)
    try:
        base = f"http://127.0.0.1:{port}"
        hey(f"{base}/healthz", 2, 8)  # warm-up
        api, floor = hey(f"{base}/api/colors?q=blue", 10, 16), hey(f"{base}/healthz", 10, 16)
    finally:
        remove(name)
    print("Throughput of one container (hey, 10 s, 16 connections)")
    print(f"  {'':<16} {'/api/colors?q=blue':>20} {'/healthz (floor)':>18} {'ratio':>7}")
    print(f"  {'requests/s':<16} {api['rps']:20.0f} {floor['rps']:18.0f} {api['rps'] / floor['rps']:6.2f}x")
    print(f"  {'p95 latency ms':<16} {api['p95_ms']:20.1f} {floor['p95_ms']:18.1f} "
          f"{api['p95_ms'] / max(floor['p95_ms'], 0.01):6.2f}x")
    print(f"  {'failed':<16} {api['failed']:20d} {floor['failed']:18d}")


def sigterm_under_load(delay: float) -> dict[str, float]:
    (a, port_a), (b, port_b) = start_container(delay), start_container(delay)
    lb = free_port()
    config = f"""
global
  maxconn 2000
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
listen colors
  bind 127.0.0.1:{lb}
  option httpchk GET /readyz
  http-check expect status 200
  default-server inter 250ms fall 1 rise 2
  server a 127.0.0.1:{port_a} check
  server b 127.0.0.1:{port_b} check
"""
    with tempfile.NamedTemporaryFile("w", suffix=".cfg") as cfg:
        cfg.write(config)
        cfg.flush()
        proxy = subprocess.Popen(["haproxy", "-db", "-f", cfg.name], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        try:
            wait_ready(f"http://127.0.0.1:{lb}/readyz")
            time.sleep(1)  # both servers up in haproxy
            killer = threading.Timer(3, lambda: subprocess.run(["docker", "kill", "--signal", "TERM", a],
                                                                capture_output=True, check=False))
            killer.start()
            result = hey(f"http://127.0.0.1:{lb}/api/colors?q=a", 10, 16)
            killer.join()
            stopped = subprocess.run(["docker", "wait", a], capture_output=True, text=True, check=False).stdout.strip()
            result["exit_code"] = int(stopped or -1)
        finally:
            proxy.terminate()
            proxy.wait(10)
            remove(a, b)
    return result


def main() -> None:
    subprocess.run(["docker", "image", "inspect", IMAGE], check=True, capture_output=True)
    throughput()
    drained, abrupt = sigterm_under_load(delay=3), sigterm_under_load(delay=0)
    print("SIGTERM to one of two containers under load (haproxy checks /readyz every 250 ms; hey 10 s, 16 conns)")
    print(f"  {'':<34} {'requests':>9} {'failed':>7} {'p95 ms':>8} {'exit':>5}")
    for label, r in (("readiness drain 3 s (the image)", drained), ("no drain (baseline)", abrupt)):
        print(f"  {label:<34} {r['total']:9d} {r['failed']:7d} {r['p95_ms']:8.1f} {r['exit_code']:5d}")


if __name__ == "__main__":
    main()
