"""Canary releases on the real API server, judged by a real Prometheus evaluating a real query.

A small exporter (this test) serves request counters; the local platform's Prometheus scrapes it through a
registered target; the canary's metric gate queries the error ratio at every step.
"""

from __future__ import annotations

import json
import time

import pytest
from helpers import ON_SIMULATED_NODES, PLATFORM, RELEASE_ONLY, RegisteredExporter, ansible_playbook, prometheus_query

pytestmark = pytest.mark.platform
NS = "canary"
PROMETHEUS = f"http://127.0.0.1:{PLATFORM['ports']['prometheus']}"
ERROR_RATIO = ('sum(rate(colors_http_requests_total{namespace="canary",status=~"5.."}[20s]))'
               ' / sum(rate(colors_http_requests_total{namespace="canary"}[20s]))')
GATES = json.dumps({"app_release_prometheus_url": PROMETHEUS, "app_release_canary_pause": "1s",
                    "app_release_prometheus_gates": [{"name": "error-ratio", "query": ERROR_RATIO, "max": 0.02}]})
ARGS = ["-i", "inventories/local", *ON_SIMULATED_NODES,
        "-e", f"app_release_namespace={NS}", "-e", f"cluster_bootstrap_app_namespace={NS}",
        "-e", "app_release_node_port=0",
        "-e", "app_release_strategy=canary", "-e", "app_release_replicas=4", "-e", GATES]


class Exporter:
    """Request counters whose share of 5xx answers the test sets."""

    def __init__(self):
        self.error_share = 0.0
        self.ok = self.errors = 0.0
        self.registered = RegisteredExporter("canary-test", {"namespace": NS}, self.exposition)

    def exposition(self) -> str:
        self.ok += 10 * (1 - self.error_share)
        self.errors += 10 * self.error_share
        return ("# TYPE colors_http_requests_total counter\n"
                f'colors_http_requests_total{{status="200"}} {self.ok}\n'
                f'colors_http_requests_total{{status="500"}} {self.errors}\n')

    def settle(self, share: float) -> float:
        """Serve `share` errors until Prometheus computes that ratio from its own scrapes."""
        self.error_share = share
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            result = prometheus_query(ERROR_RATIO)
            if result and abs(float(result[0]["value"][1]) - share) < 0.01:
                return float(result[0]["value"][1])
            time.sleep(1)
        raise AssertionError(f"Prometheus never computed an error ratio of {share}")

    def close(self):
        self.registered.close()


@pytest.fixture(scope="module")
def exporter(k8s):
    exp = Exporter()
    exp.settle(0.0)
    assert ansible_playbook("deploy.yml", *ARGS, "-e", "app_release_version=7.0.0").returncode == 0
    yield exp
    exp.close()
    core, _, _ = k8s
    core.delete_namespace(NS)


def _images(k8s):
    _, apps, _ = k8s
    stable = apps.read_namespaced_deployment("colors", NS)
    return stable.spec.template.spec.containers[0].image, stable.status.ready_replicas


def test_a_canary_whose_error_ratio_exceeds_the_gate_is_aborted(k8s, exporter):
    exporter.settle(0.5)
    result = ansible_playbook("deploy.yml", *ARGS, *RELEASE_ONLY, "-e", "app_release_version=7.1.0")
    assert result.returncode != 0
    out = " ".join(result.stdout.split())
    assert "Canary 7.1.0 (localhost/colors:7.1.0) aborted at 25% (1 of 4 pods): gate prometheus:error-ratio" in out
    assert "= 0.5 > 0.02" in out
    assert "localhost/colors:7.0.0 is back at 4 replicas (healthy)" in out
    assert _images(k8s) == ("localhost/colors:7.0.0", 4)
    _, apps, _ = k8s
    assert apps.read_namespaced_deployment("colors-canary", NS).spec.replicas == 0


def test_a_canary_that_passes_every_step_is_promoted(k8s, exporter):
    exporter.settle(0.0)
    result = ansible_playbook("deploy.yml", *ARGS, *RELEASE_ONLY, "-e", "app_release_version=7.2.0")
    assert result.returncode == 0, result.stdout[-3000:]
    assert _images(k8s) == ("localhost/colors:7.2.0", 4)
    core, _, _ = k8s
    entries = [json.loads(cm.data["entry"]) for cm in
               core.list_namespaced_config_map(NS, label_selector="colors.io/release-ledger=colors").items]
    latest = max(entries, key=lambda e: e["id"])
    assert latest["strategy"] == "canary" and latest["verdict"] == "succeeded"
    assert [s["percent"] for s in latest["steps"]] == [25, 50]
