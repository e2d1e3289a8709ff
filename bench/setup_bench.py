#!/usr/bin/env python3
"""Setup benchmark: toolchains, platform start and first-slice deploy, each beside a baseline, as ratios.

Run through `make bench` (warm figures, ~1 minute) or `make bench COLD=1` (adds a cold toolchain build into
throw-away caches: a fresh machine's pip install, Go module download and Go compile; 10+ minutes).

Baselines, measured in the same run on the same machine:
  operations toolchain   the development Python set, both fresh (empty folder, empty pip cache)
  platform start   kwokctl create cluster --runtime binary + scale 2 nodes (kwok's own tool, same binaries)
  deploy           kubectl apply of the same rendered manifests + kubectl rollout status
The local platform is left running as it was found.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "localplatform"))
from colors_platform.builds import binary  # noqa: E402 - the package lives beside the project, not on the path
from colors_platform.config import Config  # noqa: E402

PLATFORM = Config.load()
ENV = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
           PATH=os.pathsep.join([str(PLATFORM.bin_links), str(Path(sys.executable).parent), os.environ["PATH"]]))
ROWS: list[tuple[str, float, str, float | None]] = []


def timed(argv: list[str], env: dict | None = None, check: bool = True) -> float:
    start = time.monotonic()
    result = subprocess.run(argv, cwd=REPO, env=env or ENV, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    if check and result.returncode != 0:
        sys.exit(f"benchmark step failed: {' '.join(argv)}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return elapsed


def row(name: str, ours: float, baseline_name: str = "", baseline: float | None = None) -> None:
    ROWS.append((name, ours, baseline_name, baseline))
    ratio = f"{ours / baseline:6.2f}x" if baseline else "      -"
    print(f"  {name:<38} {ours:8.2f}s   {baseline_name:<34} "
          f"{(f'{baseline:8.2f}s' if baseline is not None else '        -')}   {ratio}", flush=True)


def playbook(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "ansible-playbook"), *args]


def bench_toolchain() -> None:
    row("toolchain, warm (make toolchain)", timed(["make", "--no-print-directory", "toolchain"]))
    # What a fresh runner installs: the operations toolchain beside the development Python set, each into an empty
    # folder with an empty pip cache (every wheel downloaded, as on a runner without a cache hit).
    with tempfile.TemporaryDirectory(prefix="colors-fresh-") as tmp:
        make = ["make", "--no-print-directory"]
        ops = timed([*make, f"OPS_VENV={tmp}/ops", "ops-toolchain"], env=dict(ENV, PIP_CACHE_DIR=f"{tmp}/pip-ops"))
        dev = timed([*make, f"VENV={tmp}/dev", f"{tmp}/dev/.installed"], env=dict(ENV, PIP_CACHE_DIR=f"{tmp}/pip-dev"))
    row("operations toolchain, fresh", ops, "development Python set, fresh", dev)
    if os.environ.get("COLD") != "1":
        return
    with tempfile.TemporaryDirectory(prefix="colors-cold-") as tmp:
        env = dict(ENV, GOCACHE=f"{tmp}/gocache", GOMODCACHE=f"{tmp}/gomod", GOFLAGS="-modcacherw")
        row("toolchain, cold (empty caches)", timed(["make", "--no-print-directory", "toolchain", f"CACHE={tmp}/cache"],
                                                    env=env))
    timed(["make", "--no-print-directory", "binaries"])  # point .platform/bin back at the real cache


def bench_platform() -> None:
    ctl = [sys.executable, str(REPO / "localplatform" / "platformctl.py")]
    timed([*ctl, "down"])
    restart = timed([*ctl, "up"])
    prepare = timed(playbook("playbooks/platform.yml", "-i", "inventories/local"))
    noop = timed(playbook("playbooks/platform.yml", "-i", "inventories/local"))

    kwokctl = str(binary(PLATFORM, "kwokctl"))
    with tempfile.TemporaryDirectory(prefix="colors-kwokctl-") as tmp:
        env = dict(ENV, KUBECONFIG=f"{tmp}/kubeconfig", KWOK_WORKDIR=f"{tmp}/kwok")
        bins = {f"--{n}-binary": str(binary(PLATFORM, n)) for n in
                ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")}
        create = [kwokctl, "create", "cluster", "--name", "bench", "--runtime", "binary", "--wait", "3m",
                  "--kwok-controller-binary", str(binary(PLATFORM, "kwok")), *(x for kv in bins.items() for x in kv)]
        baseline = timed(create, env) + timed([kwokctl, "scale", "node", "--replicas", "2", "--name", "bench"], env)
        timed([kwokctl, "delete", "cluster", "--name", "bench"], env)
    row("platform restart + nodes Ready", restart + prepare, "kwokctl create cluster + 2 nodes", baseline)
    row("make up on a running platform (no-op)", noop)


def bench_deploy() -> None:
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(PLATFORM.kubeconfig))
    core = client.CoreV1Api(api)
    for ns in ("colors", "bench-baseline"):
        _delete_namespace(core, ns)
    version = yaml.safe_load((REPO / "inventories/local/group_vars/all/main.yml").read_text())["app_release_version"]
    # On the simulated nodes, like the kubectl baseline below (9.9.9 is a made-up version without an image); the
    # real worker node's rollouts are measured by bench/zero_downtime_bench.py.
    # With the platform step, as `make deploy` runs (simulated-nodes.yml skips it for the tests).
    local = ["-i", "inventories/local", "-e", f"@{REPO / 'localplatform' / 'simulated-nodes.yml'}",
             "-e", '{"colors_prelude_platform": true}']
    first = timed(playbook("deploy.yml", *local))
    noop = timed(playbook("deploy.yml", *local))
    rollout = timed(playbook("deploy.yml", *local, "-e", "app_release_version=9.9.9"))
    timed(playbook("deploy.yml", *local, "-e", f"app_release_version={version}"))

    manifests = _rendered_manifests(api)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump_all(manifests, f)
        kubectl = ["kubectl", "--kubeconfig", str(PLATFORM.kubeconfig), "-n", "bench-baseline"]
        base_first = timed(["kubectl", "--kubeconfig", str(PLATFORM.kubeconfig), "create", "namespace",
                            "bench-baseline"]) + timed([*kubectl, "apply", "-f", f.name]) + timed(
            [*kubectl, "rollout", "status", "deployment/colors", "--timeout=5m"])
        base_noop = timed([*kubectl, "apply", "-f", f.name]) + timed(
            [*kubectl, "rollout", "status", "deployment/colors", "--timeout=5m"])
        base_rollout = timed([*kubectl, "set", "image", "deployment/colors", "colors=localhost/colors:9.9.9"]) + timed(
            [*kubectl, "rollout", "status", "deployment/colors", "--timeout=5m"])
    _delete_namespace(core, "bench-baseline")
    row("deploy.yml, first deploy", first, "kubectl apply + rollout status", base_first)
    row("deploy.yml, new version rolled out", rollout, "kubectl set image + rollout status", base_rollout)
    row("deploy.yml, no-op re-run", noop, "kubectl apply + rollout status", base_noop)


def _rendered_manifests(api) -> list[dict]:
    """The Deployment and Service as deploy.yml left them, stripped to what a user would apply."""
    from kubernetes import client

    deployment = client.AppsV1Api(api).read_namespaced_deployment("colors", "colors")
    service = client.CoreV1Api(api).read_namespaced_service("colors", "colors")
    out = []
    for obj, kind, api_version in ((deployment, "Deployment", "apps/v1"), (service, "Service", "v1")):
        data = api.sanitize_for_serialization(obj)
        spec = data["spec"]
        for key in ("clusterIP", "clusterIPs"):
            spec.pop(key, None)
        out.append({"apiVersion": api_version, "kind": kind,
                    "metadata": {"name": "colors", "labels": data["metadata"].get("labels", {})}, "spec": spec})
    return out


def _delete_namespace(core, name: str) -> None:
    from kubernetes.client.rest import ApiException

    try:
        core.delete_namespace(name)
    except ApiException as exc:
        if exc.status == 404:
            return
        raise
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            core.read_namespace(name)
        except ApiException:
            return
        time.sleep(0.5)


def main() -> int:
    print(f"Colors setup benchmark ({os.cpu_count()} cores)  ours vs baseline, ratio = ours / baseline")
    print(f"  {'step':<38} {'ours':>9}   {'baseline':<34} {'':>9}   ratio")
    bench_toolchain()
    bench_platform()
    bench_deploy()
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "setup.json").write_text(json.dumps(
        [{"step": n, "seconds": o, "baseline": b, "baseline_seconds": bs} for n, o, b, bs in ROWS], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
