"""The runbook's and incident response's commands, run as written against the local platform: each command that
tests/documented_commands.py marks RUN, in document order, through bash (quoting and `export` as an operator's shell
treats them), with only the placeholders filled (`<env>` is local) and the made-up versions kept on the simulated
nodes."""

from __future__ import annotations

import datetime
import re
import time

import pytest
from documented_commands import COMMANDS, RUN, documented
from helpers import KUBECONFIG, ON_SIMULATED_NODES, PLATFORM, RELEASE_ONLY, ansible_playbook, run

pytestmark = pytest.mark.platform
NS = "colors"
INCIDENT = "INC-4242"
ALERTMANAGER = f"http://127.0.0.1:{PLATFORM['ports']['alertmanager']}"


def _image(k8s) -> str:
    return k8s[1].read_namespaced_deployment("colors", NS).spec.template.spec.containers[0].image


def _revision_of(k8s, version: str) -> str:
    """The Deployment revision whose ReplicaSet runs version (what `kubectl rollout history` lists)."""
    for rs in k8s[1].list_namespaced_replica_set(NS, label_selector="app.kubernetes.io/name=colors").items:
        if rs.spec.template.spec.containers[0].image.endswith(f":{version}"):
            return rs.metadata.annotations["deployment.kubernetes.io/revision"]
    raise AssertionError(f"no ReplicaSet of {version}")


def _local(command: str, k8s) -> str:
    """The command for the local platform: placeholders filled, and for releases of made-up versions the overlay
    that keeps them on the simulated nodes (no image exists for 1.4.2)."""
    line = command.replace("<env>", "local").replace("<staging|prod>", "local").replace("INC-<n>", INCIDENT)
    line = line.replace("<alertmanager>", ALERTMANAGER)
    if "rollback_to_revision=12" in line:  # the revision that released 1.4.2 here
        line = line.replace("rollback_to_revision=12", f"rollback_to_revision={_revision_of(k8s, '1.4.2')}")
    if "<running>" in line:
        line = line.replace("<running>", _image(k8s).rsplit(":", 1)[1])
    tomorrow = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = re.sub(r"\[(UNTIL=)\S+\]", rf"\g<1>{tomorrow}", line)  # the optional end of a freeze, in the future
    assert not re.search(r"<[^>]+>", line), f"a placeholder is left in `{line}`"
    if line.startswith(("ansible-playbook deploy.yml", "ansible-playbook rollback.yml",
                        "ansible-playbook playbooks/verify.yml")):
        line += f" -e {ON_SIMULATED_NODES[1]}"
    if line.startswith("ansible-playbook deploy.yml"):
        line += f" -e '{RELEASE_ONLY[1]}'"
    if line.startswith("ansible-playbook playbooks/verify.yml"):  # the local inventory names a version, staging and
        line += f" -e app_release_version={_image(k8s).rsplit(':', 1)[1]}"  # prod none: verify what serves
    return line


def _serves(version: str):
    return lambda k8s, out: _image(k8s) == f"localhost/colors:{version}"


# What each command must have done, read back from the platform (besides exiting 0).
CHECKS = {
    "ansible-playbook deploy.yml -i inventories/<env> -e app_release_version=1.4.2": _serves("1.4.2"),
    "ansible-playbook rollback.yml -i inventories/<env>": _serves("1.3.0"),
    "ansible-playbook rollback.yml -i inventories/<env> -e app_release_rollback_to_version=1.3.0": _serves("1.3.0"),
    "ansible-playbook rollback.yml -i inventories/<env> -e app_release_rollback_to_revision=12": _serves("1.4.2"),
    "ansible-playbook deploy.yml -i inventories/<env> -e app_release_version=1.4.2 "
    "-e app_release_lock_force_release=true": _serves("1.4.2"),
    "ansible-playbook rollback.yml -i inventories/<env> -e app_release_lock_force_release=true": _serves("1.3.0"),
    "ansible-playbook release_report.yml -i inventories/<env> -e app_release_report_days=30":
        lambda k8s, out: "change failure rate" in out.lower(),
    "make freeze ENV=<env> REASON='INC-<n>: investigating, stop the line'":
        lambda k8s, out: k8s[0].read_namespaced_config_map("colors-release-freeze", NS) is not None,
    "amtool silence query service=colors --alertmanager.url <alertmanager>": lambda k8s, out: INCIDENT in out,
    "kubectl -n colors get deploy,rs,pods": lambda k8s, out: "deployment.apps/colors" in out,
    "ansible-playbook deploy.yml -i inventories/<env> -e app_release_version=<running> "
    "-e \"app_release_freeze_override='INC-<n>: restore the keys'\"":
        lambda k8s, out: f"Releasing during the freeze (INC-4242: investigating, stop the line): {INCIDENT}: restore "
                         "the keys" in " ".join(out.split()),
}


@pytest.fixture(scope="module")
def history(k8s):
    """1.3.0 released before the commands run (the runbook rolls back to it); bootstrapped as the local inventory
    does it."""
    result = ansible_playbook("deploy.yml", "-i", "inventories/local", *ON_SIMULATED_NODES,
                              "-e", "app_release_version=1.3.0")
    assert result.returncode == 0, result.stdout[-3000:]
    return result


def test_every_runnable_command_of_the_documents_runs_against_the_local_platform(k8s, history):
    runnable = [c for c in documented() if COMMANDS[c] == RUN]
    assert set(CHECKS) <= set(runnable), set(CHECKS) - set(runnable)
    timings = []
    env = {"KUBECONFIG": str(KUBECONFIG)}
    try:
        for command in runnable:
            line = _local(command, k8s)
            began = time.monotonic()
            result = run(["bash", "-c", line], **env)
            timings.append((time.monotonic() - began, line))
            out = result.stdout + result.stderr
            assert result.returncode == 0, f"`{line}` failed (exit {result.returncode}):\n{out[-3000:]}"
            check = CHECKS.get(command)
            assert check is None or check(k8s, out), f"`{line}` did not do what the documents say:\n{out[-3000:]}"
    finally:
        run(["make", "--no-print-directory", "unfreeze", "ENV=local"])
        query = run(["amtool", "silence", "query", "-q", f"--alertmanager.url={ALERTMANAGER}", "service=colors"])
        for silence in query.stdout.split():
            run(["amtool", "silence", "expire", f"--alertmanager.url={ALERTMANAGER}", silence])
        for seconds, line in timings:
            print(f"{seconds:6.1f} s  {line}")
    assert len(timings) == len(runnable)
