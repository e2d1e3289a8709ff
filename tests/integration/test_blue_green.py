"""Blue-green releases on the real API server: the Service switches only after every gate passed, a failed
release never receives traffic, and switching back is instant."""

from __future__ import annotations

import json
import re
import time

import pytest
from helpers import (
    ON_SIMULATED_NODES,
    PLATFORM,
    RELEASE_ONLY,
    RegisteredExporter,
    ansible_playbook,
    prometheus_query,
    template_hashes,
    test_judge,
    wait_for,
)

pytestmark = pytest.mark.platform
NS = "bluegreen"
ARGS = ["-i", "inventories/local", *ON_SIMULATED_NODES,
        "-e", f"app_release_namespace={NS}", "-e", f"cluster_bootstrap_app_namespace={NS}",
        "-e", "app_release_node_port=0",
        "-e", "app_release_strategy=blue_green"]


def _routed(k8s):
    core, apps, _ = k8s
    color = core.read_namespaced_service("colors", NS).spec.selector["colors.io/color"]
    deployment = apps.read_namespaced_deployment(f"colors-{color}", NS)
    return color, deployment.spec.template.spec.containers[0].image, deployment.status.ready_replicas


def _deploy(version):
    """A release as staging runs it, once two_colours' first deploy bootstrapped the namespace."""
    return ansible_playbook("deploy.yml", *ARGS, *RELEASE_ONLY, "-e", f"app_release_version={version}")


@pytest.fixture(scope="module")
def two_colours(k8s):
    # The first as the local inventory runs it: bootstrap, then release.
    assert ansible_playbook("deploy.yml", *ARGS, "-e", "app_release_version=4.0.0").returncode == 0
    assert _deploy("4.1.0").returncode == 0
    yield
    core, _, _ = k8s
    core.delete_namespace(NS)


def test_each_release_goes_to_the_idle_colour_and_the_service_follows(k8s, two_colours):
    colour, image, ready = _routed(k8s)
    assert image == "localhost/colors:4.1.0" and ready == 2
    _, apps, _ = k8s
    other = "green" if colour == "blue" else "blue"
    previous = apps.read_namespaced_deployment(f"colors-{other}", NS)
    assert previous.spec.template.spec.containers[0].image == "localhost/colors:4.0.0"
    assert previous.status.ready_replicas == 2  # kept running for an instant switch-back


def test_a_failed_release_never_receives_traffic(k8s, two_colours):
    before = _routed(k8s)
    result = _deploy("4.2.0-drill-pull-error")
    assert result.returncode != 0
    out = " ".join(result.stdout.split())
    # Where traffic is, as the engine read it back from the Service and its EndpointSlices.
    assert "failed gate image-pull" in out and "This release did not switch the Service" in out
    assert f"service colors selects {before[0]} and routes to {before[2]} pods ({before[2]} of {before[1]})" in out
    assert _routed(k8s) == before
    _, apps, _ = k8s
    idle = "green" if before[0] == "blue" else "blue"
    assert apps.read_namespaced_deployment(f"colors-{idle}", NS).spec.replicas == 0  # scaled away


def test_switching_back_and_forth_is_instant(k8s, two_colours):
    assert _deploy("4.3.0").returncode == 0
    colour, image, _ = _routed(k8s)
    assert image == "localhost/colors:4.3.0"
    back = ansible_playbook("rollback.yml", *ARGS)
    assert back.returncode == 0, back.stdout[-3000:]
    assert _routed(k8s)[1] == "localhost/colors:4.1.0" and _routed(k8s)[0] != colour
    forth = ansible_playbook("rollback.yml", *ARGS)
    assert forth.returncode == 0 and _routed(k8s)[:2] == (colour, image)


def test_the_same_release_again_changes_nothing(k8s, two_colours):
    _deploy("4.3.0")
    again = _deploy("4.3.0")
    assert again.returncode == 0
    assert "changed=0" in again.stdout


def test_the_metric_gates_judge_the_new_colour_by_its_own_pods(k8s, two_colours):
    """The gate's $pods is the idle colour's ReplicaSet, not the colour serving: on the kwok nodes no pod exports
    metrics, so the gate has no data and fails, naming that selector, and the Service stays."""
    before = _routed(k8s)
    gates = json.dumps({"app_release_prometheus_url": f"http://127.0.0.1:{PLATFORM['ports']['prometheus']}",
                        "app_release_prometheus_no_data_timeout": 2})
    result = ansible_playbook("deploy.yml", *ARGS, *RELEASE_ONLY, "-e", "app_release_version=4.4.0", "-e", gates)
    assert result.returncode != 0
    out = " ".join(result.stdout.split())
    match = re.search(r'failed gate prometheus:error-ratio on (blue|green): .*?pod_template_hash="([a-z0-9]+)".*?'
                      r'returned no data', out)
    assert match, out[-3000:]
    _, apps, _ = k8s
    idle = "green" if before[0] == "blue" else "blue"
    assert match.group(1) == idle
    assert template_hashes(apps, NS, "localhost/colors:4.4.0") == {match.group(2)}
    assert f"service colors selects {before[0]} and routes to" in out and _routed(k8s) == before


class ColourTraffic:
    """What a colour's pods would export under real traffic, served by one exporter the local Prometheus scrapes (a
    registered target labelled with the namespace): at each scrape the counters of the ReplicaSet the Service routes
    to grow by `rate` requests a second - a share `errors[image]` of them 5xx - each labelled with its
    pod_template_hash as the PodMonitor labels a pod's series. So the judge's PromQL reads each colour's own
    series from a real Prometheus, with the kwok pods standing still."""

    def __init__(self, k8s, rate: float = 40.0):
        self.core, self.apps, _ = k8s
        self.rate, self.errors = rate, {}
        self.counts: dict[str, list[float]] = {}  # hash -> [ok, 5xx]
        self.last = time.monotonic()
        self.registered = RegisteredExporter("bluegreen-test", {"namespace": NS}, self.exposition)

    def exposition(self) -> str:
        now = time.monotonic()
        elapsed, self.last = now - self.last, now
        color = self.core.read_namespaced_service("colors", NS).spec.selector.get("colors.io/color")
        lines = ["# TYPE colors_http_requests_total counter",
                 "# TYPE colors_http_request_duration_seconds histogram"]
        for rs in self.apps.list_namespaced_replica_set(NS).items:
            digest, image = rs.metadata.labels["pod-template-hash"], rs.spec.template.spec.containers[0].image
            ok, bad = self.counts.setdefault(digest, [0.0, 0.0])
            if rs.metadata.owner_references[0].name == f"colors-{color}" and rs.spec.replicas:
                share = self.errors.get(image, 0.0)
                ok, bad = ok + elapsed * self.rate * (1 - share), bad + elapsed * self.rate * share
                self.counts[digest] = [ok, bad]
            labels = f'pod_template_hash="{digest}",route="/"'
            lines += [f'colors_http_requests_total{{{labels},status="200"}} {ok}',
                      f'colors_http_requests_total{{{labels},status="500"}} {bad}']
            lines += [f'colors_http_request_duration_seconds_bucket{{{labels},le="{le}"}} {(ok + bad) * part}'
                      for le, part in (("0.01", 0.5), ("0.05", 0.9), ("0.1", 1.0), ("+Inf", 1.0))]
        return "\n".join(lines) + "\n"

    def close(self):
        self.registered.close()


JUDGE = test_judge(interval=4, max_analysis=60, min_sample=100)


def test_the_judge_keeps_a_new_colour_like_the_old_and_switches_back_from_a_worse_one(k8s, two_colours):
    """After each switch the new colour's series are judged against the serving colour's of the minute before it
    (a range query): the same error ratio stays; 50 % errors switch the Service back at once. (40 requests a second:
    the exporter's, so half a minute of history is enough.)"""
    judged = ("-e", json.dumps({"app_release_prometheus_url": f"http://127.0.0.1:{PLATFORM['ports']['prometheus']}",
                                "app_release_prometheus_gates": [], "app_release_judge_enabled": True,
                                "app_release_judge": JUDGE}))
    traffic = ColourTraffic(k8s)
    try:
        serving = _routed(k8s)[0]
        wait_for("Prometheus to hold half a minute of the serving colour's requests", lambda: prometheus_query(
            f'sum(colors_http_requests_total{{namespace="{NS}"}}) > 1200'), timeout=120)
        kept = ansible_playbook("deploy.yml", *ARGS, *RELEASE_ONLY, "-e", "app_release_version=4.7.0", *judged)
        assert kept.returncode == 0, kept.stdout[-3000:]
        colour, image, _ = _routed(k8s)
        assert (colour != serving, image) == (True, "localhost/colors:4.7.0")
        traffic.errors["localhost/colors:4.8.0"] = 0.5
        worse = ansible_playbook("deploy.yml", *ARGS, *RELEASE_ONLY, "-e", "app_release_version=4.8.0", *judged)
    finally:
        traffic.close()
    assert worse.returncode != 0
    out = " ".join(worse.stdout.split())
    assert f"failed gate judge on {serving} after the switch: error-ratio: the canary is worse by" in out, out[-3000:]
    assert f"The Service was switched back to {colour} and {serving} scaled to zero." in out
    assert _routed(k8s)[:2] == (colour, "localhost/colors:4.7.0")
    core, apps, _ = k8s
    assert apps.read_namespaced_deployment(f"colors-{serving}", NS).spec.replicas == 0
    entries = sorted((json.loads(cm.data["entry"]) for cm in core.list_namespaced_config_map(
        NS, label_selector="colors.io/release-ledger=colors").items), key=lambda e: e["id"])
    good, bad = entries[-2:]
    assert (good["verdict"], good["analysis"]["state"]) == ("succeeded", "passed")
    ratio = next(m for m in good["analysis"]["metrics"] if m["metric"] == "error-ratio")
    assert ratio["baseline"]["total"] >= 1000 and ratio["canary"]["total"] >= 100, ratio  # the minute before; since
    assert (bad["verdict"], bad["gate"], bad["analysis"]["state"]) == ("rolled_back", "judge", "failed")
