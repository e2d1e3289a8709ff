"""The tests of `make test` (pytest and Molecule) in two lanes side by side, then the modules that must run alone.

- cluster lane: the integration modules that share the local Kubernetes cluster (the colors namespace, the
  monitoring stack, the worker node, the release lock), one after another, then the Molecule scenarios of the roles
  that install the platform's shared parts (local_platform, logging, monitoring). It begins with the modules nothing
  else on the cluster may run beside (CLUSTER_FIRST): test_platform and test_release stop the API server and the
  simulated nodes - with app_release's scenario beside it, test_release's API-outage test failed once (its second
  release missed the routing gate) - and test_deployer_access counts every request of the deployers' group in the
  API server's audit log, so another test releasing as the deployer would count as its own.
- side lane, at the same time: first what never touches that cluster - the unit tests and the integration modules of
  Docker and the registry, PostgreSQL servers of their own, Terraform on moto, act in its containers, then the
  infrastructure role's scenario (Terraform on moto). The staging rehearsal's AWS phases run here too
  (test_rehearsal_aws.py): they enforce IAM in staging's account only, which no other test uses. Everything that takes
  the local environment's Terraform state lock is in this lane, one after the other (test_awx_infrastructure,
  test_infrastructure, the infrastructure scenario): a plan in the other lane would be refused while one holds it.
  infrastructure.yml starts the local AWS API only (local_platform_scope aws): when it started the whole platform, a
  side-lane run restarted the API server test_release had just killed under a release, which then met the restarted
  server's 403s and missed its one-line outage verdict, and the side run failed on the half-started platform.
  Then, once the cluster lane is past CLUSTER_FIRST, the cluster's work that stays in namespaces of its own and feeds
  no series the monitoring stack's rules read (SIDE_CLUSTER: test_blue_green, test_migrations, test_release_report -
  its alert history in a Prometheus of its own, test_canary - its exporter's series are job "registered", which no
  rule selects; the scenarios of preflight, app_secrets, cluster_bootstrap, app_release): it takes ~17 minutes off
  the cluster lane, the longer one.
  Most of the cluster lane's time is spent waiting on rollouts, scrapes and alerts; the side lane fills it, at the
  lowest CPU priority (nice 19, its own autogroup): on two cores it must not slow the cluster lane, which it did by
  25-40 % at equal priority.
- alone, after both: modules that change what every other test relies on - test_aws_permissions turns IAM
  enforcement on in the one moto server both lanes call (every account); test_rehearsal resumes the rehearsal the
  side lane began and takes the cluster over as staging's (the worker node untainted, the simulated nodes
  cordoned, the colors namespace replaced).

Each lane's output is printed whole (the side lane's once it ends); the run fails when any step fails or collects
no test (pytest's exit status 5; `make molecule` fails when no scenario passed), and names which.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INTEGRATION = REPO / "tests" / "integration"
SIDE = ("tests/unit", "tests/integration/test_terraform_plans.py", "tests/integration/test_terraform_cli.py",
        "tests/integration/test_awx_infrastructure.py", "tests/integration/test_infrastructure.py",
        "tests/integration/test_image.py",
        "tests/integration/test_scan.py", "tests/integration/test_app_postgres.py",
        "tests/integration/test_pipelines.py", "tests/integration/test_runners.py",
        "tests/integration/test_rehearsal_aws.py", "tests/integration/test_judge_bench.py")
SIDE_MOLECULE = ("infrastructure",)
CLUSTER_FIRST = ("tests/integration/test_deployer_access.py", "tests/integration/test_platform.py",
                 "tests/integration/test_release.py")
SIDE_CLUSTER = ("tests/integration/test_blue_green.py", "tests/integration/test_migrations.py",
                "tests/integration/test_release_report.py", "tests/integration/test_canary.py")
SIDE_CLUSTER_MOLECULE = ("preflight", "app_secrets", "cluster_bootstrap", "app_release")
ALONE = ("tests/integration/test_aws_permissions.py", "tests/integration/test_rehearsal.py")


def lanes() -> dict[str, list[str]]:
    """The test paths of each part; the cluster lane is CLUSTER_FIRST, then every integration module no part names."""
    named = set(SIDE) | set(ALONE) | set(CLUSTER_FIRST) | set(SIDE_CLUSTER)
    missing = sorted(p for p in named if not (REPO / p).exists())
    if missing:
        raise SystemExit(f"tools/run_suite.py names test paths that do not exist: {', '.join(missing)}")
    cluster = sorted(str(p.relative_to(REPO)) for p in INTEGRATION.glob("test_*.py")
                     if str(p.relative_to(REPO)) not in named)
    return {"cluster first": list(CLUSTER_FIRST), "cluster": cluster, "side": list(SIDE),
            "side cluster": list(SIDE_CLUSTER), "alone": list(ALONE)}


def scenarios() -> dict[str, list[str]]:
    """The roles whose Molecule scenario each part runs: the side lane's (before and after CLUSTER_FIRST), and every
    other one in the cluster lane."""
    roles = sorted(p.parent.name for p in (REPO / "roles").glob("*/molecule"))
    named = set(SIDE_MOLECULE) | set(SIDE_CLUSTER_MOLECULE)
    missing = sorted(named - set(roles))
    if missing:
        raise SystemExit(f"tools/run_suite.py names roles without a Molecule scenario: {', '.join(missing)}")
    return {"cluster": [r for r in roles if r not in named], "side": list(SIDE_MOLECULE),
            "side cluster": list(SIDE_CLUSTER_MOLECULE)}


def pytest(name: str, paths: list[str], durations: int) -> list[str]:
    # Each lane has its own base temporary directory and no shared cache: two pytest processes run at once.
    base = Path(tempfile.gettempdir()) / f"colors-suite-{name}"
    return [sys.executable, "-m", "pytest", *paths, f"--durations={durations}", f"--basetemp={base}",
            "-p", "no:cacheprovider"]


def molecule(roles: list[str]) -> list[str]:
    # `-o up`: the platform is up (a prerequisite of `make test`); neither lane starts it again while the other runs.
    return ["make", "--no-print-directory", "-o", "up", "molecule", f"ROLE={' '.join(roles)}"]


def run_lane(name: str, steps: list[tuple[str, list[str] | threading.Event]], outcome: dict, start: float,
             niceness: int = 0, **popen) -> None:
    """Each step of a lane in turn (all of them, whatever the one before did); its exit status and end time. A step
    that is an Event is a wait: for the other lane to set it.

    With a niceness, each step runs in a session of its own whose scheduling group (the kernel's autogroup, one per
    session) gets that niceness: with autogroups on, a process's own niceness counts only against the processes of
    its session, so `nice` alone would not yield to the platform's daemons (the API server, etcd, the kubelet, each
    in a session of its own), which the other lane waits on."""
    for step, argv in steps:
        print(f"[suite] {name} lane: {step}", flush=True)
        if isinstance(argv, threading.Event):
            argv.wait()
            outcome[f"{name} {step}"] = (0, time.monotonic() - start)
            continue
        if niceness:
            argv = ["sh", "-c", f'echo {niceness} > /proc/self/autogroup 2>/dev/null; exec nice -n {niceness} "$@"',
                    "sh", *argv]
        rc = subprocess.run(argv, cwd=REPO, check=False, start_new_session=bool(niceness), **popen).returncode
        outcome[f"{name} {step}"] = (rc, time.monotonic() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--durations", type=int, default=20, help="slowest tests each part reports")
    args = parser.parse_args()
    parts, roles = lanes(), scenarios()
    outcome: dict[str, tuple[int, float]] = {}
    start = time.monotonic()
    # Set once the cluster lane is past CLUSTER_FIRST (whether it passed or not): the side lane's cluster work waits.
    past_first = threading.Event()
    with tempfile.TemporaryFile("w+") as side_log:
        side = threading.Thread(target=run_lane, args=(
            "side", [("pytest", pytest("side", parts["side"], args.durations)), ("molecule", molecule(roles["side"])),
                     ("wait for the cluster lane to pass CLUSTER_FIRST", past_first),
                     ("pytest on the cluster", pytest("side-cluster", parts["side cluster"], args.durations)),
                     ("molecule on the cluster", molecule(roles["side cluster"]))],
            outcome, start, 19), kwargs={"stdout": side_log, "stderr": subprocess.STDOUT})
        side.start()
        print(f"[suite] side lane (nice 19): {' '.join(parts['side'])}; Molecule of {' '.join(roles['side'])}; "
              f"then on the cluster {' '.join(parts['side cluster'])}; Molecule of {' '.join(roles['side cluster'])}",
              flush=True)
        print(f"[suite] cluster lane: {' '.join(parts['cluster first'])}, then {len(parts['cluster'])} modules; "
              f"Molecule of {' '.join(roles['cluster'])}", flush=True)
        try:
            run_lane("cluster", [("pytest of CLUSTER_FIRST", pytest("cluster-first", parts["cluster first"],
                                                                      args.durations))], outcome, start)
        finally:
            past_first.set()
        run_lane("cluster", [("pytest", pytest("cluster", parts["cluster"], args.durations)),
                             ("molecule", molecule(roles["cluster"]))], outcome, start)
        side.join()
        side_log.seek(0)
        print("\n[suite] ---- side lane output ----", flush=True)
        sys.stdout.write(side_log.read())
    print(f"\n[suite] ---- alone: {' '.join(parts['alone'])} ----", flush=True)
    began = time.monotonic()
    run_lane("alone", [("pytest", pytest("alone", parts["alone"], args.durations))], outcome, began)
    for name, (code, seconds) in outcome.items():
        state = "passed" if code == 0 else ("collected no test" if code == 5 else f"FAILED (exit {code})")
        print(f"[suite] {name}: {state}, done at {seconds:.0f} s", flush=True)
    print(f"[suite] wall time {time.monotonic() - start:.0f} s", flush=True)
    return 0 if all(code == 0 for code, _ in outcome.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
