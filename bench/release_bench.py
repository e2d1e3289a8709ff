#!/usr/bin/env python3
"""Release engine benchmark: one run, same cluster, ours beside a baseline, as ratios.

  automatic rollback   the engine's restore (verdict to healthy previous release), from the ledger
                       vs kubectl rollout undo + kubectl rollout status after the same failed release
  stalled release      the engine's verdict on a never-ready release (progressDeadlineSeconds=10)
                       vs kubernetes.core.k8s with wait (it waits for its whole wait_timeout, here 60 s)
  app rollout          the engine's rollout of a new version (apply to healthy)
                       vs kubectl set image + kubectl rollout status
  no-op re-run         deploy.yml with nothing to change (changed=0) vs kubectl apply + rollout status

Run through `make bench-release` on a running local platform (`make up`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STATE = REPO / ".platform"
KUBECONFIG = str(STATE / "kubeconfig")
ENV = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
           PATH=os.pathsep.join([str(STATE / "bin"), str(Path(sys.executable).parent), os.environ["PATH"]]))
KUBECTL = ["kubectl", "--kubeconfig", KUBECONFIG, "-n", "colors"]
DEADLINE = 10


def sh(argv: list[str], check: bool = True) -> tuple[float, subprocess.CompletedProcess]:
    start = time.monotonic()
    result = subprocess.run(argv, cwd=REPO, env=ENV, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    if check and result.returncode != 0:
        sys.exit(f"benchmark step failed: {' '.join(argv)}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return elapsed, result


def deploy(version: str, *extra: str, check: bool = True) -> float:
    playbook = str(Path(sys.executable).parent / "ansible-playbook")
    # Made-up versions: on the simulated nodes (localplatform/simulated-nodes.yml), like the kubectl baselines.
    simulated = f"@{REPO / 'localplatform' / 'simulated-nodes.yml'}"
    return sh([playbook, "deploy.yml", "-i", "inventories/local", "-e", simulated,
               "-e", f"app_release_version={version}", *extra], check=check)[0]


def last_entry() -> dict:
    _, out = sh(["kubectl", "--kubeconfig", KUBECONFIG, "-n", "colors", "get", "configmaps", "-l",
                 "colors.io/release-ledger=colors", "-o", "json"])
    entries = [json.loads(cm["data"]["entry"]) for cm in json.loads(out.stdout)["items"]]
    return max(entries, key=lambda e: e["id"])


def kubectl_rollout_status(timeout: str = "5m") -> float:
    return sh([*KUBECTL, "rollout", "status", "deployment/colors", f"--timeout={timeout}"])[0]


def wait_for_crashloop(image: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _, out = sh([*KUBECTL, "get", "pods", "-o", "json"])
        for pod in json.loads(out.stdout)["items"]:
            for cs in pod["status"].get("containerStatuses", []):
                if cs["image"] == image and cs["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff":
                    return
        time.sleep(0.2)
    sys.exit(f"pods of {image} never reported CrashLoopBackOff")


def row(name: str, ours: float, baseline_name: str, baseline: float) -> dict:
    print(f"  {name:<22} {ours:8.2f}s   {baseline_name:<46} {baseline:8.2f}s   {ours / baseline:6.2f}x", flush=True)
    return {"step": name, "seconds": ours, "baseline": baseline_name, "baseline_seconds": baseline}


def main() -> int:
    print(f"Colors release engine benchmark ({os.cpu_count()} cores)  ratio = ours / baseline")
    rows = []
    deploy("5.0.0")
    deploy("5.1.0")

    # Automatic rollback: the engine restores 5.1.0 after a crash-looping 5.2.0.
    deploy("5.2.0-drill-crashloop", check=False)
    ours_rollback = last_entry()["rollback_target"]["seconds"]
    sh([*KUBECTL, "set", "image", "deployment/colors", "colors=localhost/colors:5.2.0-drill-crashloop"])
    wait_for_crashloop("localhost/colors:5.2.0-drill-crashloop")
    undo = sh([*KUBECTL, "rollout", "undo", "deployment/colors"])[0] + kubectl_rollout_status()
    rows.append(row("automatic rollback", ours_rollback, "kubectl rollout undo + rollout status", undo))

    # Stalled release: readiness never comes.
    deploy("5.3.0-drill-never-ready", "-e", f"app_release_progress_deadline_seconds={DEADLINE}", check=False)
    ours_verdict = last_entry()["verdict_seconds"]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", dir=REPO / "bench", delete=False) as f:
        f.write(f"""---
- name: Baseline - kubernetes.core.k8s waiting for a release that never becomes ready
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Apply a never-ready image and wait
      kubernetes.core.k8s:
        kubeconfig: {KUBECONFIG}
        namespace: colors
        kind: Deployment
        name: colors
        state: patched
        definition:
          spec:
            progressDeadlineSeconds: {DEADLINE}
            template:
              spec:
                containers:
                  - name: colors
                    image: localhost/colors:5.3.0-drill-never-ready
        wait: true
        wait_timeout: 60
""")
    try:
        baseline_stall, _ = sh([str(Path(sys.executable).parent / "ansible-playbook"), f.name], check=False)
    finally:
        os.unlink(f.name)
    sh([*KUBECTL, "rollout", "undo", "deployment/colors"])
    kubectl_rollout_status()
    rows.append(row("stalled-release verdict", ours_verdict,
                    "kubernetes.core.k8s wait (wait_timeout 60)", baseline_stall))
    print(f"  {'':<22} goal: verdict <= progressDeadlineSeconds + 10 = {DEADLINE + 10}s -> "
          f"{'met' if ours_verdict <= DEADLINE + 10 else 'MISSED'}")

    # App rollout phase: a new healthy version.
    deploy("5.4.0")
    ours_rollout = last_entry()["verdict_seconds"]
    set_image = sh([*KUBECTL, "set", "image", "deployment/colors", "colors=localhost/colors:5.5.0"])[0]
    rows.append(row("app rollout phase", ours_rollout, "kubectl set image + rollout status",
                    set_image + kubectl_rollout_status()))

    # No-op re-run of the whole job.
    deploy("5.5.0")
    noop = deploy("5.5.0")
    _, manifest = sh([*KUBECTL, "get", "deployment", "colors", "-o", "json"])
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        data = json.loads(manifest.stdout)
        for key in ("status",):
            data.pop(key, None)
        for key in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
            data["metadata"].pop(key, None)
        json.dump(data, f)
        f.flush()
        apply = sh([*KUBECTL, "apply", "--server-side", "--force-conflicts", "--field-manager=colors-release",
                    "-f", f.name])[0] + kubectl_rollout_status()
    rows.append(row("no-op re-run (deploy.yml)", noop, "kubectl apply + rollout status", apply))

    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "release.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
