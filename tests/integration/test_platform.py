"""The local platform is real: TLS, RBAC and admission on the API server, Ready nodes, drills, moto."""

from __future__ import annotations

import json
import os
import signal
import ssl
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from helpers import KUBECONFIG, PLATFORM, REPO, STATE, ansible_playbook, moto_client, recap, run
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.platform
API = f"https://127.0.0.1:{PLATFORM['ports']['kube_apiserver']}"
DRILL_NS = "platform-drills"


def test_kubectl_with_the_written_kubeconfig_lists_the_ready_nodes():
    result = run(["kubectl", "--kubeconfig", str(KUBECONFIG), "get", "nodes", "-o", "json"])
    assert result.returncode == 0, result.stderr
    nodes = json.loads(result.stdout)["items"]
    ready = [n["metadata"]["name"] for n in nodes
             if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])]
    assert len(ready) >= 2, f"Ready nodes: {ready}"
    assert {n["name"] for n in PLATFORM["kwok_nodes"]} <= set(ready)


def test_kubeconfig_lives_in_the_git_ignored_state_folder():
    assert KUBECONFIG.parent == STATE
    result = run(["git", "check-ignore", "-q", str(KUBECONFIG.relative_to(REPO))])
    assert result.returncode == 0, ".platform/kubeconfig is not git-ignored"


def test_api_server_serves_tls_signed_by_the_cluster_ca_and_rejects_anonymous_requests():
    ctx = ssl.create_default_context(cafile=str(STATE / "pki" / "ca.crt"))
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{API}/api/v1/namespaces/kube-system/secrets", context=ctx, timeout=5)  # noqa: S310 - https URL built here
    assert err.value.code in (401, 403)
    with pytest.raises(urllib.error.URLError):  # a client that does not trust the cluster CA is refused
        urllib.request.urlopen(f"{API}/readyz", context=ssl.create_default_context(), timeout=5)  # noqa: S310 - https URL built here


def test_rbac_denies_a_service_account_what_it_was_not_granted(k8s):
    from kubernetes import client

    _, _, api = k8s
    review = client.AuthorizationV1Api(api).create_subject_access_review(client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user="system:serviceaccount:default:default",
            resource_attributes=client.V1ResourceAttributes(verb="list", resource="secrets", namespace="kube-system"),
        )))
    assert review.status.allowed is False


def test_pod_security_admission_rejects_a_privileged_pod_in_a_restricted_namespace(k8s, drill_namespace):
    core, _, _ = k8s
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "privileged"},
           "spec": {"containers": [{"name": "c", "image": "localhost/colors:0.1.0",
                                    "securityContext": {"privileged": True}}]}}
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(drill_namespace, pod)
    assert err.value.status == 403 and "violates PodSecurity" in err.value.body


@pytest.fixture(scope="module")
def drill_namespace(k8s):
    core, _, _ = k8s
    labels = {"pod-security.kubernetes.io/enforce": "restricted"}
    try:
        core.create_namespace({"metadata": {"name": DRILL_NS, "labels": labels}})
    except ApiException as exc:
        if exc.status != 409:
            raise
    yield DRILL_NS
    core.delete_namespace(DRILL_NS)


def _restricted_pod(name: str, image: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                         "seccompProfile": {"type": "RuntimeDefault"}},
                     "containers": [{"name": "colors", "image": image, "securityContext": {
                         "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}]}}


def _wait_pod(core, ns, name, predicate, timeout=30):
    deadline = time.monotonic() + timeout
    pod = None
    while time.monotonic() < deadline:
        pod = core.read_namespaced_pod(name, ns)
        if predicate(pod):
            return pod
        time.sleep(0.5)
    raise AssertionError(f"pod {name} never reached the expected state: {pod.status if pod else None}")


def _ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def test_a_pod_of_a_healthy_image_becomes_ready(k8s, drill_namespace):
    core, _, _ = k8s
    core.create_namespaced_pod(drill_namespace, _restricted_pod("healthy", "localhost/colors:0.1.0"))
    pod = _wait_pod(core, drill_namespace, "healthy", _ready)
    assert pod.status.phase == "Running" and pod.spec.node_name.startswith("kwok-node-")


def test_a_never_ready_drill_pod_runs_but_stays_unready(k8s, drill_namespace):
    core, _, _ = k8s
    image = "localhost/colors:0.1.0-drill-never-ready"
    core.create_namespaced_pod(drill_namespace, _restricted_pod("never-ready", image))
    pod = _wait_pod(core, drill_namespace, "never-ready", lambda p: p.status.phase == "Running")
    time.sleep(5)  # well past the 0.5-1.5 s a healthy pod needs to turn ready
    pod = core.read_namespaced_pod("never-ready", drill_namespace)
    assert not _ready(pod)
    assert pod.status.container_statuses[0].state.running is not None


@pytest.mark.parametrize(("name", "image", "reason"), [
    ("crashloop", "localhost/colors:0.1.0-drill-crashloop", "CrashLoopBackOff"),
    ("pull-error", "localhost/colors:0.1.0-drill-pull-error", "ImagePullBackOff"),
    ("bad-registry", "registry.invalid/colors:0.1.0", "ImagePullBackOff"),
])
def test_failure_drill_pods_report_the_waiting_reason(k8s, drill_namespace, name, image, reason):
    core, _, _ = k8s
    core.create_namespaced_pod(drill_namespace, _restricted_pod(name, image))

    def waiting_reason(pod):
        statuses = pod.status.container_statuses or []
        return statuses and statuses[0].state.waiting and statuses[0].state.waiting.reason == reason

    pod = _wait_pod(core, drill_namespace, name, waiting_reason)
    assert not _ready(pod)


def test_moto_serves_the_terraform_state_bucket():
    s3 = moto_client("s3")
    assert s3.get_bucket_versioning(Bucket=PLATFORM["aws"]["state_bucket"])["Status"] == "Enabled"
    iam = moto_client("iam", "us-east-1")
    policy = iam.get_policy(PolicyArn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy")["Policy"]
    assert policy["PolicyName"] == "AmazonEKSClusterPolicy"  # managed policies are loaded


def test_every_component_reports_healthy():
    result = run([sys.executable, "localplatform/platformctl.py", "status"])
    assert result.returncode == 0, result.stdout + result.stderr
    status = json.loads(result.stdout)
    # The worker node's components where the host can run it (tests/integration/test_worker_node.py insists it can),
    # its NetworkPolicy engine where the kernel has NFQUEUE.
    node = {"containerd-node", "kubelet", "kube-proxy"} if status["worker_node"]["enabled"] else set()
    node |= {"network-policy"} if status["worker_node"]["network_policy"]["enabled"] else set()
    assert set(status["components"]) == {"etcd", "kube-apiserver", "kube-controller-manager",
                                         "kube-scheduler", "kwok", "prometheus", "alertmanager", "blackbox-exporter",
                                         "node-exporter", "pushgateway", "alert-receiver", "victorialogs", "registry",
                                         "moto", "dockerd", *node}
    assert all(c["healthy"] for c in status["components"].values()), status["components"]
    # Every component runs from this checkout, except the Docker engine when the machine already runs one.
    assert all(c["pid"] for name, c in status["components"].items() if name != "dockerd"), status["components"]


def test_make_up_twice_changes_nothing():
    result = ansible_playbook("playbooks/platform.yml", "-i", "inventories/local")
    assert result.returncode == 0, result.stdout[-3000:]
    assert recap(result)["changed"] == 0
    up = json.loads(run([sys.executable, "localplatform/platformctl.py", "up"]).stdout)
    assert up["started"] == [] and up["changed"] is False


def test_a_component_that_dies_is_named_and_restarted_by_up():
    pid = int((STATE / "run" / "kube-scheduler.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    status = run([sys.executable, "localplatform/platformctl.py", "status"])
    assert status.returncode == 1
    assert "not running or unhealthy: kube-scheduler" in status.stderr
    # Provisioning the local environment starts its AWS API only: a cluster component down (a drill, a test that
    # stops the API server under a release) stays down until `up`.
    provisioning = ansible_playbook("infrastructure.yml", "-i", "inventories/local", "--tags", "platform")
    assert provisioning.returncode == 0, provisioning.stdout[-3000:]
    assert json.loads(run([sys.executable, "localplatform/platformctl.py", "status"]).stdout)[
        "components"]["kube-scheduler"]["pid"] is None, "infrastructure.yml started a cluster component"
    up = run([sys.executable, "localplatform/platformctl.py", "up"])
    assert up.returncode == 0, up.stderr
    assert json.loads(up.stdout)["started"] == ["kube-scheduler"]
    assert "kube-scheduler died since it was started" in up.stderr
