"""The local platform's real worker node: Colors really runs there (kubelet, containerd, runc, CNI bridge), its
Service really routes (kube-proxy), `make deploy`'s dashboard URL answers, and the release engine's drills fail on
real pods - the evidence comes from the kubelet, which kwok never writes."""

from __future__ import annotations

import datetime
import errno
import ipaddress
import json
import re
import socket
import time
import urllib.error
import urllib.request
import uuid

import pytest
from helpers import (
    APP_VERSION,
    PLATFORM,
    RELEASE_ONLY,
    STATE,
    ansible_playbook,
    load_plugin,
    registry_digest,
    run,
    wait_for,
)

pytestmark = [pytest.mark.platform, pytest.mark.usefixtures("worker_node")]
NS = "colors"
NODE = PLATFORM["worker_node"]["name"]
IMAGE = f"localhost/colors:{APP_VERSION}"
REGISTRY = f"127.0.0.1:{PLATFORM['ports']['registry']}"


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 # nosec B310 - the platform's URLs
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def _pods(k8s):
    core, _, _ = k8s
    return [p for p in core.list_namespaced_pod(NS, label_selector="app.kubernetes.io/name=colors").items
            if p.metadata.deletion_timestamp is None]


def test_the_worker_node_is_a_real_kubelet_of_the_pinned_version(k8s, worker_node):
    core, _, _ = k8s
    node = core.read_node(NODE)
    assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"
    assert node.status.node_info.kubelet_version == f"v{PLATFORM['versions']['kubernetes']}"
    assert node.status.node_info.container_runtime_version.startswith("containerd://")
    addresses = {a.type: a.address for a in node.status.addresses}
    assert addresses["InternalIP"] == worker_node["address"] != "127.0.0.1"
    # Dedicated to the app: nothing without the toleration lands here (the kwok tests' made-up versions).
    assert [(t.key, t.value, t.effect) for t in node.spec.taints] == [("colors.io/workload", "app", "NoSchedule")]
    assert node.metadata.labels["colors.io/workload"] == "app"


def test_a_connection_a_service_sends_to_a_simulated_pod_is_refused_at_once(k8s, worker_node):
    # kube-proxy applies a Service's endpoints a second after they change: a connection it still sends to a simulated
    # pod that left must fail at once (the smoke gate then asks again) - neither meet what answers out the default
    # route (here: an HTTP 404, which failed a release leaving the simulated nodes) nor hang until its timeout.
    from kubernetes import client

    core, _, api = k8s
    namespace, address = f"colors-simulated-pods-{uuid.uuid4().hex[:6]}", str(ipaddress.ip_network(
        PLATFORM["kubernetes"]["simulated_pod_cidr"])[7])
    core.create_namespace({"metadata": {"name": namespace}})
    try:
        service = core.create_namespaced_service(namespace, {
            "metadata": {"name": "gone"}, "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
        client.DiscoveryV1Api(api).create_namespaced_endpoint_slice(namespace, {
            "metadata": {"name": "gone-1", "labels": {"kubernetes.io/service-name": "gone"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}]})

        def refused() -> float | None:
            """Seconds until the connection was refused; None: it was not (an answer, or a timeout)."""
            began = time.monotonic()
            try:
                socket.create_connection((service.spec.cluster_ip, 80), timeout=5).close()
            except OSError as exc:  # before kube-proxy has the Service: out the default route
                if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
                    return time.monotonic() - began
            return None

        wait_for("a connection to the Service of a simulated pod to be refused", refused, timeout=30, every=0.5)
        # Once kube-proxy has the Service, every connection is refused at once.
        again = [refused() for _ in range(5)]
        assert all(seconds is not None and seconds < 0.5 for seconds in again), again
        # And straight to the simulated pod's address.
        with pytest.raises(OSError) as direct:
            socket.create_connection((address, 8080), timeout=5).close()
        assert direct.value.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH), direct.value
    finally:
        core.delete_namespace(namespace)


def test_colors_pods_run_on_the_worker_node_and_pass_their_readiness_probe(k8s, released):
    pods = wait_for("two ready Colors pods", lambda: [p for p in _pods(k8s) if any(
        c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])] if len(_pods(k8s)) == 2
        else None)
    for pod in pods:
        assert pod.spec.node_name == NODE
        container = pod.status.container_statuses[0]
        # A container the runtime started (kwok reports no container id), running the image `make image` built.
        assert container.container_id.startswith("containerd://") and container.started and container.ready
        assert container.image == IMAGE and container.restart_count == 0
        assert pod.status.pod_ip.startswith(PLATFORM["worker_node"]["pod_cidr"].rsplit(".", 1)[0] + ".")
        # The probe the kubelet runs answers from the host too: the pod's own address, the app's port.
        status, body = _get(f"http://{pod.status.pod_ip}:8080/readyz")
        assert (status, json.loads(body)["ready"]) == (200, True)


def test_make_deploy_prints_the_dashboard_url_and_it_answers_through_the_service(k8s, released, worker_node):
    core, _, _ = k8s
    service = core.read_namespaced_service("colors", NS)
    assert service.spec.type == "NodePort"
    node_port = service.spec.ports[0].node_port
    url = f"http://{worker_node['address']}:{node_port}/"
    assert f"Dashboard: {url}" in " ".join(released.stdout.split())
    # 200 and a page the app wrote (unrouted traffic here is answered by a proxy with a 404, never a timeout).
    status, page = _get(url)
    assert status == 200 and "<title>Colors" in page and f"v{APP_VERSION}" in page
    # The ClusterIP routes too (kube-proxy's rules answer on the host), to the version that was released.
    status, body = _get(f"http://{service.spec.cluster_ip}:{service.spec.ports[0].port}/version")
    assert status == 200 and json.loads(body)["version"] == APP_VERSION


def test_pod_logs_come_from_the_kubelet(k8s, released):
    core, _, _ = k8s
    pod = _pods(k8s)[0]
    lines = core.read_namespaced_pod_log(pod.metadata.name, NS, tail_lines=50).splitlines()
    assert any(json.loads(line).get("logger") == "colors" for line in lines if line.startswith("{"))


# Each drill is a real image (app/build_image.py) or a missing one; the kubelet's own events are the evidence.
DRILLS = [
    ("crashloop", "pod-crashloop", "CrashLoopBackOff", "BackOff", "Back-off restarting failed container colors"),
    ("pull-error", "image-pull", "ErrImagePull", "Failed",
     f'Failed to pull image "localhost/colors:{APP_VERSION}-drill-pull-error"'),
    ("never-ready", "rollout-progress", "ProgressDeadlineExceeded", "Unhealthy", "Readiness probe failed"),
]


@pytest.mark.parametrize(("drill", "gate", "evidence", "reason", "kubelet_says"), DRILLS, ids=[d[0] for d in DRILLS])
def test_a_failing_release_on_real_pods_is_rolled_back_and_the_dashboard_keeps_answering(
        k8s, released, worker_node, drill, gate, evidence, reason, kubelet_says):
    core, apps, _ = k8s
    version = f"{APP_VERSION}-drill-{drill}"
    since = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)
    result = ansible_playbook("deploy.yml", "-i", "inventories/local", *RELEASE_ONLY,
                              "-e", f"app_release_version={version}", "-e", "app_release_progress_deadline_seconds=15")
    assert result.returncode != 0
    out = " ".join(result.stdout.split())
    assert f"Release {version} (localhost/colors:{version}) failed gate {gate}" in out and evidence in out
    assert f"Restored {IMAGE}" in out and "healthy again" in out
    # What the kubelet of the worker node reported about the drill's pod.
    events = [e for e in core.list_namespaced_event(NS, field_selector=f"reason={reason}").items
              if e.source.component == "kubelet" and e.source.host == NODE
              and re.match(r"colors-[a-z0-9]+-[a-z0-9]+$", e.involved_object.name)
              and (e.last_timestamp or e.event_time) >= since]
    assert any(kubelet_says in e.message for e in events), [e.message for e in events]
    # The previous release serves on: the Deployment is back on it, and the dashboard answers.
    deployment = apps.read_namespaced_deployment("colors", NS)
    assert deployment.spec.template.spec.containers[0].image == IMAGE
    assert deployment.status.ready_replicas == 2
    node_port = core.read_namespaced_service("colors", NS).spec.ports[0].node_port
    status, body = _get(f"http://{worker_node['address']}:{node_port}/version")
    assert status == 200 and json.loads(body)["version"] == APP_VERSION


def test_a_rolling_release_and_a_rollback_under_load_lose_no_request(k8s, released, worker_node):
    # Two loads at once, on the same release and rollback: one opens a connection per request (each meets the
    # Service's endpoints as kube-proxy has them then), one keeps its connections (each must be closed by a pod
    # that drains, never cut).
    core, apps, _ = k8s
    second = f"{APP_VERSION}-zero-downtime.1"
    built = run(["python", "app/build_image.py", "--version", second, "--load-worker-node"])
    assert built.returncode == 0, built.stderr[-2000:]
    port = core.read_namespaced_service("colors", NS).spec.ports[0].node_port
    load_class = load_plugin("bench/zero_downtime_bench.py", "zero_downtime_bench").Load
    for playbook, extra, image in (("deploy.yml", ["-e", f"app_release_version={second}"], second),
                                   ("rollback.yml", [], APP_VERSION)):
        loads = {keepalive: load_class(worker_node["address"], port, rate=30, workers=4, keepalive=keepalive,
                                       timeout=5).start() for keepalive in (False, True)}
        result = ansible_playbook(playbook, "-i", "inventories/local", *RELEASE_ONLY, *extra)
        wait_for("the replaced pods to finish draining", lambda: len(core.list_namespaced_pod(
            NS, label_selector="app.kubernetes.io/name=colors").items) == 2, timeout=60)
        measured = {("kept-alive" if keepalive else "new-connections"): load.stop()
                    for keepalive, load in loads.items()}
        assert result.returncode == 0, result.stdout[-3000:]
        assert apps.read_namespaced_deployment("colors", NS).spec.template.spec.containers[0].image.endswith(image)
        for kind, figures in measured.items():
            assert figures["requests"] >= 30 * 5 and figures["failed"] == 0, (playbook, kind, figures)


# Staging's and prod's path to the node: the image `make publish` pushed to the registry (the platform's stand-in for
# ECR), pulled by the kubelet - nothing loaded into the node by hand. A namespace of its own, and a repository of its
# own per run (tags are immutable: a second run must not find its version taken). A NodePort of its own keeps the
# smoke gate on; the metric gates are off (the local Prometheus' PodMonitor job watches the colors namespace).
PULL_NS = "colors-pull"
PULL_ARGS = ("-i", "inventories/local", "-e", f"app_release_namespace={PULL_NS}",
             "-e", f"cluster_bootstrap_app_namespace={PULL_NS}", "-e", "app_release_node_port=30081",
             "-e", "app_release_prometheus_url=")


@pytest.fixture(scope="module")
def pulled(k8s):
    """The tree's image published to the platform's registry, then released from there into PULL_NS; yields the
    repository's name (in the registry at REGISTRY)."""
    name = f"colors-pull-{uuid.uuid4().hex[:8]}"
    published = run(["make", "--no-print-directory", "publish"], timeout=1200, REGISTRY=REGISTRY, REPOSITORY=name)
    assert published.returncode == 0, published.stdout[-2000:] + published.stderr[-2000:]
    try:
        released = ansible_playbook("deploy.yml", *PULL_ARGS, "-e", f"app_release_image_repository={REGISTRY}/{name}",
                                    "-e", f"app_release_version={APP_VERSION}")
        assert released.returncode == 0, released.stdout[-3000:]
        yield name
    finally:
        k8s[0].delete_namespace(PULL_NS)


def _kubelet_events(k8s, reason: str) -> list[str]:
    return [e.message for e in k8s[0].list_namespaced_event(PULL_NS, field_selector=f"reason={reason}").items
            if e.source.component == "kubelet" and e.source.host == NODE]


def test_a_published_image_is_pulled_by_the_kubelet_from_the_registry(k8s, pulled):
    repository = f"{REGISTRY}/{pulled}"
    image = f"{repository}:{APP_VERSION}"
    pods = [p for p in k8s[0].list_namespaced_pod(PULL_NS, label_selector="app.kubernetes.io/name=colors").items
            if p.metadata.deletion_timestamp is None]
    assert len(pods) == 2
    digest = registry_digest(REGISTRY, pulled, APP_VERSION)
    for pod in pods:
        container = pod.status.container_statuses[0]
        assert pod.spec.node_name == NODE and container.ready and container.image == image
        # The digest the registry holds for the tag (what `make publish` pushed), not an id of a loaded image.
        assert container.image_id == f"{repository}@{digest}"
    # The kubelet pulled it (a loaded image would be "already present on machine"), and the registry served it to
    # the node's containerd: the tag resolved, then the manifest by its digest.
    assert any(f'Successfully pulled image "{image}"' in m for m in _kubelet_events(k8s, "Pulled"))
    served = [line for line in (STATE / "logs" / "registry.log").read_text().splitlines()
              if f'"GET /v2/{pulled}/manifests/{digest} HTTP/1.1" 200' in line]
    assert served and all('"containerd/' in line for line in served)


def test_a_version_never_published_fails_at_the_pull_and_the_published_one_serves_on(k8s, pulled):
    repository, version = f"{REGISTRY}/{pulled}", f"{APP_VERSION}-never-published"
    result = ansible_playbook("deploy.yml", *PULL_ARGS, *RELEASE_ONLY, "-e",
                              f"app_release_image_repository={repository}", "-e", f"app_release_version={version}")
    assert result.returncode != 0
    out = " ".join(result.stdout.split())
    assert f"Release {version} ({repository}:{version}) failed gate image-pull" in out
    assert f"Restored {repository}:{APP_VERSION}" in out
    assert any(f'Failed to pull image "{repository}:{version}"' in m and "not found" in m
               for m in _kubelet_events(k8s, "Failed"))
    deployment = k8s[1].read_namespaced_deployment("colors", PULL_NS)
    assert deployment.spec.template.spec.containers[0].image == f"{repository}:{APP_VERSION}"
    assert deployment.status.ready_replicas == 2

