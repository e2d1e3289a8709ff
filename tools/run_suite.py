"""The pytest suite of `make test` in two lanes side by side, then the modules that must run alone.

- cluster lane: every integration module not named below - they share the local Kubernetes cluster (the colors
  namespace, the monitoring stack, the worker node, the release lock), so they run one after another.
- side lane, at the same time: the unit tests and the integration modules that never touch that cluster (Docker and
  the registry, PostgreSQL servers of their own, Terraform on moto in temporary directories, act in its containers).
  Most of the cluster lane's time is spent waiting on rollouts, scrapes and alerts; the side lane fills it.
- alone, after both: modules that change what every other test relies on - test_aws_permissions turns IAM
  enforcement on in the one moto server both lanes call.

Each lane's output is printed whole (the side lane's once it ends); the run fails when any part fails or collects
no test (pytest's exit status 5), and names which.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INTEGRATION = REPO / "tests" / "integration"
SIDE = ("tests/unit", "tests/integration/test_terraform_plans.py", "tests/integration/test_terraform_cli.py",
        "tests/integration/test_image.py", "tests/integration/test_scan.py", "tests/integration/test_app_postgres.py",
        "tests/integration/test_pipelines.py", "tests/integration/test_runners.py")
ALONE = ("tests/integration/test_aws_permissions.py",)


def lanes() -> dict[str, list[str]]:
    """The paths of each part; the cluster lane is every integration module the others do not name."""
    named = set(SIDE) | set(ALONE)
    missing = sorted(p for p in named if not (REPO / p).exists())
    if missing:
        raise SystemExit(f"tools/run_suite.py names test paths that do not exist: {', '.join(missing)}")
    cluster = sorted(str(p.relative_to(REPO)) for p in INTEGRATION.glob("test_*.py")
                     if str(p.relative_to(REPO)) not in named)
    return {"cluster": cluster, "side": list(SIDE), "alone": list(ALONE)}


def pytest(name: str, paths: list[str], durations: int, **popen) -> subprocess.Popen:
    # Each lane has its own base temporary directory and no shared cache: two pytest processes run at once.
    base = Path(tempfile.gettempdir()) / f"colors-suite-{name}"
    argv = [sys.executable, "-m", "pytest", *paths, f"--durations={durations}", f"--basetemp={base}",
            "-p", "no:cacheprovider"]
    return subprocess.Popen(argv, cwd=REPO, **popen)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--durations", type=int, default=20, help="slowest tests each part reports")
    args = parser.parse_args()
    parts = lanes()
    outcome: dict[str, tuple[int, float]] = {}
    start = time.monotonic()
    with tempfile.TemporaryFile("w+") as side_log:
        side = pytest("side", parts["side"], args.durations, stdout=side_log, stderr=subprocess.STDOUT, text=True)
        print(f"[suite] side lane started (pid {side.pid}): {' '.join(parts['side'])}", flush=True)
        print(f"[suite] cluster lane: {len(parts['cluster'])} modules", flush=True)
        rc = pytest("cluster", parts["cluster"], args.durations).wait()
        outcome["cluster"] = (rc, time.monotonic() - start)
        rc = side.wait()
        outcome["side"] = (rc, time.monotonic() - start)
        side_log.seek(0)
        print("\n[suite] ---- side lane output ----", flush=True)
        sys.stdout.write(side_log.read())
    print(f"\n[suite] ---- alone: {' '.join(parts['alone'])} ----", flush=True)
    began = time.monotonic()
    rc = pytest("alone", parts["alone"], args.durations).wait()
    outcome["alone"] = (rc, time.monotonic() - began)
    for name, (code, seconds) in outcome.items():
        state = "passed" if code == 0 else ("collected no test" if code == 5 else f"FAILED (exit {code})")
        print(f"[suite] {name}: {state} in {seconds:.0f} s", flush=True)
    print(f"[suite] wall time {time.monotonic() - start:.0f} s", flush=True)
    return 0 if all(code == 0 for code, _ in outcome.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
