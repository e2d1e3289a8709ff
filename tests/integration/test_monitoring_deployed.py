"""Monitoring what is deployed: the local Prometheus discovers the Colors pods on the real worker node through
Kubernetes service discovery, labels them as the Prometheus Operator labels a PodMonitor's targets, the release gates
judge each release by the metrics of its own pods ("no data" fails), the SLO and error alerts fire from the pods and
resolve, a node alert fires from the real node exporter, and every dashboard panel has data or a listed reason."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from helpers import (
    APP_VERSION,
    ERROR_ALERTS,
    INHIBITING_ALERTS,
    PLATFORM,
    RELEASE_ONLY,
    REPO,
    ansible_playbook,
    image_as,
    load_plugin,
    prometheus_query,
    quiet,
    received_alerts,
    role_pod_monitor,
    template_hashes,
    test_judge,
    wait_for,
)

pytestmark = [pytest.mark.platform, pytest.mark.usefixtures("worker_node")]
NS = "colors"
PROMETHEUS = f"http://127.0.0.1:{PLATFORM['ports']['prometheus']}"
# After the `released` fixture (bootstrapped), each release as staging runs it.
DEPLOY = ("deploy.yml", "-i", "inventories/local", *RELEASE_ONLY)
SOURCES = yaml.safe_load((REPO / "roles" / "monitoring" / "dashboard-sources.yml").read_text())


def targets(job: str = "colors") -> list[dict]:
    with urllib.request.urlopen(f"{PROMETHEUS}/api/v1/targets?state=active", timeout=10) as response:  # noqa: S310
        return [t for t in json.load(response)["data"]["activeTargets"] if t["labels"].get("job") == job]


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 # nosec B310 - the platform's URLs
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def pods(k8s) -> list:
    core, _, _ = k8s
    return [p for p in core.list_namespaced_pod(NS, label_selector="app.kubernetes.io/name=colors").items
            if p.metadata.deletion_timestamp is None]


def dashboard(worker_node) -> str:
    return f"http://{worker_node['address']}:30080/"


def test_the_slo_and_error_alerts_fire_from_the_pods_and_resolve(k8s, released, worker_node, monitoring):
    version = f"{APP_VERSION}-drill-errors"
    quiet(ERROR_ALERTS + INHIBITING_ALERTS)
    since = time.time()
    # The release goes out unjudged (gates off), as a release whose gates miss a problem would.
    served = ansible_playbook(*DEPLOY, "-e", f"app_release_version={version}", "-e", "app_release_smoke_url=",
                              "-e", "app_release_smoke_path=", "-e", "app_release_prometheus_url=")
    assert served.returncode == 0, served.stdout[-3000:]
    try:
        # Spread over several scrapes: a counter series is born at its first error, and rate() counts only what
        # it grows by after its first sample.
        statuses = []
        for _ in range(100):
            statuses.append(get(dashboard(worker_node)))
            time.sleep(0.1)
        assert statuses == [500] * 100
        assert wait_for("the 500s in the pods' own series", lambda: prometheus_query(
            f'sum(colors_http_requests_total{{namespace="{NS}",route="/",status="500",'
            f'app_kubernetes_io_version="{version}"}}) >= 100'), timeout=30)
        for receiver, alert in zip(("ticket", "page"), ERROR_ALERTS, strict=True):
            wait_for(f"{alert} at the {receiver} receiver",
                     lambda r=receiver, a=alert: received_alerts(since, r, "firing", alertname=a), timeout=300)
    finally:
        rolled = ansible_playbook("rollback.yml", "-i", "inventories/local")
        assert rolled.returncode == 0, rolled.stdout[-3000:]
    # The drill's pods terminate after the rollback returns, and kube-proxy drops them from the NodePort a moment
    # later: until then some requests still reach them. Healthy traffic starts once they are gone.
    wait_for("the drill's pods, terminating ones too, to be gone", lambda: not k8s[0].list_namespaced_pod(
        NS, label_selector=f"app.kubernetes.io/name=colors,app.kubernetes.io/version={version}").items, timeout=90)
    wait_for("20 answers 200 in a row from the NodePort",
             lambda: all(get(dashboard(worker_node)) == 200 for _ in range(20)), timeout=60)
    # Healthy traffic until the 5-minute error ratio is under both thresholds again (100 errors: > 7,000 requests).
    hey = subprocess.run(["hey", "-n", "12000", "-c", "8", dashboard(worker_node)], capture_output=True, text=True,
                         timeout=300, check=True)
    assert "[200]\t12000 responses" in hey.stdout, hey.stdout[-1500:]
    for receiver, alert in zip(("ticket", "page"), ERROR_ALERTS, strict=True):
        wait_for(f"{alert} resolved at the {receiver} receiver",
                 lambda r=receiver, a=alert: received_alerts(since, r, "resolved", alertname=a), timeout=300)


def test_prometheus_discovers_every_colors_pod_with_the_labels_of_the_pod_monitor(k8s, released):
    filters = load_plugin("plugins/filter/pod_monitor.py")
    names = {p.metadata.name for p in pods(k8s)}
    found = wait_for("Prometheus to scrape each Colors pod", lambda: (
        t := targets()) and {x["labels"]["pod"] for x in t if x["health"] == "up"} == names and t, timeout=60)
    # A rolling release's pods carry no colour and no track.
    expected = set(filters.target_labels(role_pod_monitor())) - {"colors_io_color", "colors_io_track"}
    for target in found:
        assert set(target["labels"]) == expected, target["labels"]
        pod = next(p for p in pods(k8s) if p.metadata.name == target["labels"]["pod"])
        assert target["labels"]["namespace"] == NS and target["labels"]["container"] == "colors"
        assert target["labels"]["endpoint"] == "http" and target["labels"]["job"] == "colors"
        assert target["labels"]["pod_template_hash"] == pod.metadata.labels["pod-template-hash"]
        assert target["labels"]["instance"] == f"{pod.status.pod_ip}:8080"
        assert target["scrapePool"] == "podMonitor/monitoring/colors/0"
    # One query serves both: the app's own series carry the same labels (those of pods a release before this test
    # replaced go stale within a scrape or two).
    series = wait_for("colors_build_info of exactly these pods", lambda: (
        found := prometheus_query(f'colors_build_info{{namespace="{NS}",job="colors"}}'))
        and {s["metric"]["pod"] for s in found} == names and found, timeout=60)
    assert {s["metric"]["version"] for s in series} == {APP_VERSION}


def test_a_release_whose_gate_selects_no_series_fails_naming_the_query_and_the_selector(k8s, released):
    _, apps, _ = k8s
    version = image_as(f"{APP_VERSION}-nodata.1")
    gates = json.dumps({"app_release_prometheus_no_data_timeout": 8, "app_release_prometheus_gates": [
        {"name": "renamed-route", "query": 'sum(rate(colors_http_requests_total{$pods,route="/renamed"}[2m]))',
         "max": 0}]})
    result = ansible_playbook(*DEPLOY, "-e", f"app_release_version={version}", "-e", gates)
    assert result.returncode != 0
    out = " ".join(result.stdout.split())
    match = re.search(r'failed gate prometheus:renamed-route: sum\(rate\(colors_http_requests_total\{'
                      r'namespace="colors",pod_template_hash="([a-z0-9]+)",route="/renamed"\}\[2m\]\)\) '
                      r'returned no data for (\d+)s', out)
    assert match, out[-3000:]
    assert 8 <= int(match.group(2)) <= 14
    # The new pods were there and scraped: it is the selector that matched nothing, and the message says so.
    assert f'Prometheus scrapes 2 target(s) matching {{namespace="colors",pod_template_hash="{match.group(1)}"}}' in out
    assert f"Restored localhost/colors:{APP_VERSION}" in out
    assert apps.read_namespaced_deployment("colors", NS).spec.template.spec.containers[0].image.endswith(APP_VERSION)


def test_a_release_that_serves_errors_under_traffic_fails_the_error_ratio_of_its_own_pods(k8s, released, worker_node):
    load_class = load_plugin("bench/zero_downtime_bench.py", "zero_downtime_bench").Load
    version = f"{APP_VERSION}-drill-errors"
    load = load_class(worker_node["address"], 30080, rate=20, workers=4, keepalive=False, timeout=5).start()
    try:  # no smoke check: only the metrics of the new pods, which the traffic reaches, can tell
        result = ansible_playbook(*DEPLOY, "-e", f"app_release_version={version}", "-e", "app_release_smoke_url=",
                                  "-e", "app_release_smoke_path=")
    finally:
        load.stop()
    assert result.returncode != 0
    out = " ".join(result.stdout.split())
    match = re.search(r'failed gate prometheus:error-ratio: .*?pod_template_hash="([a-z0-9]+)".*? = ([0-9.e-]+) '
                      r'> 0\.02', out)
    assert match, out[-3000:]
    _, apps, _ = k8s
    assert match.group(1) in template_hashes(apps, NS, f"localhost/colors:{version}")  # the drill's pods, not the old
    assert f"Restored localhost/colors:{APP_VERSION}" in out and get(dashboard(worker_node)) == 200


# One canary step (1 canary, 1 stable, 1 baseline pod behind the Service); the threshold gates off, so that what
# decides is the judge - which the local inventory turns on itself where its gates read Prometheus, as here.
JUDGED_CANARY = ("-e", json.dumps({"app_release_strategy": "canary", "app_release_canary_steps": [50],
                                   "app_release_canary_pause": "10s",
                                   "app_release_judge": test_judge(interval=5, max_analysis=150, min_sample=50),
                                   "app_release_prometheus_gates": []}))


def _ledger(k8s) -> list[dict]:
    core, _, _ = k8s
    items = core.list_namespaced_config_map(NS, label_selector="colors.io/release-ledger=colors").items
    return sorted((json.loads(cm.data["entry"]) for cm in items), key=lambda e: e["id"])


def test_the_canary_judge_promotes_a_canary_like_its_baseline_and_aborts_a_worse_one_under_traffic(
        k8s, released, worker_node, tmp_path):
    """Real traffic through the Service reaches the stable, canary and baseline pods; the judge reads each side's
    counters from the local Prometheus. The same code under another tag (A/A) is promoted; the errors drill (its
    page answers 500) is aborted by the judge, at the first look with enough requests."""
    load_class = load_plugin("bench/zero_downtime_bench.py", "zero_downtime_bench").Load
    same, worse = image_as(f"{APP_VERSION}-judged.{int(time.time())}"), f"{APP_VERSION}-drill-errors"
    summary = tmp_path / "summary.md"
    load = load_class(worker_node["address"], 30080, rate=30, workers=6, keepalive=False, timeout=5).start()
    _, apps, _ = k8s
    try:
        promoted = ansible_playbook(*DEPLOY, *JUDGED_CANARY, "-e", f"app_release_version={same}",
                                    "-e", f"app_release_summary_path={summary}")
        aborted = ansible_playbook(*DEPLOY, *JUDGED_CANARY, "-e", f"app_release_version={worse}",
                                   "-e", "app_release_smoke_url=", "-e", "app_release_smoke_path=")
    finally:
        load.stop()
        tracks = {d.metadata.name: d.spec.replicas for d in apps.list_namespaced_deployment(NS).items
                  if d.metadata.name in ("colors-canary", "colors-baseline")}
        for name in tracks:  # the later modules find the namespace as a rolling release leaves it
            apps.delete_namespaced_deployment(name, NS)
    assert promoted.returncode == 0, promoted.stdout[-3000:]
    *_, good, bad = _ledger(k8s)
    [step] = good["steps"]
    assert (good["verdict"], step["judge"]["state"], step["judge"]["judge_state"]) == ("succeeded", "passed", "pass")
    ratio = next(m for m in step["judge"]["metrics"] if m["metric"] == "error-ratio")
    assert ratio["canary"]["total"] >= 50 and ratio["baseline"]["total"] >= 50, ratio  # each side its own requests
    assert step["judge"]["seconds"] >= 10, "passed before the bake was over"
    assert "### Canary judge: the canary beside a baseline of" in summary.read_text()
    assert "| 50 % (1 pods) | passed | 100.0 |" in summary.read_text()

    assert aborted.returncode != 0
    out = " ".join(aborted.stdout.split())
    assert "gate judge failed: error-ratio: the canary is worse by" in out, out[-3000:]
    [step] = bad["steps"]
    assert (bad["verdict"], bad["gate"], step["judge"]["state"]) == ("rolled_back", "judge", "failed")
    ratio = next(m for m in step["judge"]["metrics"] if m["metric"] == "error-ratio")
    assert ratio["canary_ratio"] > 0.5 and ratio["baseline_ratio"] < 0.05, ratio
    assert apps.read_namespaced_deployment("colors", NS).spec.template.spec.containers[0].image == \
        f"localhost/colors:{same}"
    assert tracks == {"colors-canary": 0, "colors-baseline": 0}, "the canary and its baseline were left running"
    assert get(dashboard(worker_node)) == 200


def test_a_node_alert_fires_from_the_real_node_exporter_and_resolves(monitoring):
    """A small file system filled to the brim on this host (the worker node): NodeFilesystemAlmostFull from the node
    exporter's own node_filesystem_* series, then resolved when it is gone."""
    since = time.time()
    with tempfile.TemporaryDirectory(prefix="colors-fs-") as folder:
        image, mountpoint = Path(folder) / "fs.img", Path(folder) / "mnt"
        mountpoint.mkdir()
        subprocess.run(["truncate", "-s", "8M", str(image)], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
        subprocess.run(["mount", "-o", "loop", str(image), str(mountpoint)], check=True, capture_output=True)
        try:
            subprocess.run(["dd", "if=/dev/zero", f"of={mountpoint / 'fill'}", "bs=64k"], capture_output=True,
                           check=False)  # until the file system is full
            labels = {"alertname": "NodeFilesystemAlmostFull", "mountpoint": str(mountpoint)}
            firing = wait_for("NodeFilesystemAlmostFull at the ticket receiver",
                              lambda: received_alerts(since, "ticket", "firing", **labels), timeout=120)
            assert firing[0]["labels"]["job"] == "node-exporter" and firing[0]["labels"]["fstype"] == "ext4"
        finally:
            subprocess.run(["umount", str(mountpoint)], check=False, capture_output=True)
        wait_for("the resolved notification", lambda: received_alerts(since, "ticket", "resolved", **labels),
                 timeout=120)


def _metric_present(name: str) -> bool:
    return bool(prometheus_query(f'count({{__name__="{name}"}})'))


def test_every_dashboard_panel_has_data_here_or_its_missing_source_is_listed(k8s, released, worker_node, monitoring):
    """After a release with traffic: each panel's queries return data and every metric they read exists (an
    `or vector(0)` alone is no data); a panel listed as missing a source here truly lacks that metric."""
    hey = subprocess.run(["hey", "-n", "200", "-c", "4", dashboard(worker_node)], capture_output=True, text=True,
                         timeout=120, check=True)
    assert "[200]\t200 responses" in hey.stdout
    version = image_as(f"{APP_VERSION}-panels.{int(time.time())}")  # a release: its marker and its versions
    summary = Path(tempfile.mkdtemp()) / "summary.md"
    released_again = ansible_playbook(*DEPLOY, "-e", f"app_release_version={version}",
                                      "-e", f"app_release_summary_path={summary}")
    assert released_again.returncode == 0, released_again.stdout[-3000:]
    # Judged by its own pods: the gate values are in the job summary.
    assert re.search(r"\| Metric gates \(new pods\) \| error-ratio = [0-9.e-]+, p95-latency-seconds = [0-9.e-]+ \|",
                     summary.read_text()), summary.read_text()
    panels = {}
    for path in sorted((REPO / "roles" / "monitoring" / "files" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            panels[f"{path.stem}/{panel['title']}"] = [t["expr"] for t in panel["targets"]]
    assert set(panels) == set(SOURCES["panels"]), "dashboard-sources.yml lists other panels than the dashboards have"
    for name, exprs in panels.items():
        entry = SOURCES["panels"][name]
        for metric in entry["metrics"]:
            assert any(metric in expr for expr in exprs), f"{name}: {metric} is not in its queries"
        if "missing" in entry:
            absent = [m for m in entry["metrics"] if not _metric_present(m)]
            assert absent, f"{name} is listed as missing a source ({entry['missing']}), but all its metrics exist here"
            for metric in entry.get("present", []):  # the half that has a source here: the Colors pods' own series
                query = f'{metric}{{namespace="{NS}",container="colors"}}'
                wait_for(f"{query} ({name})", lambda q=query: prometheus_query(q), timeout=60)
            continue
        for metric in entry["metrics"]:
            wait_for(f"{metric} ({name}, from {entry['source']})", lambda m=metric: _metric_present(m), timeout=60)
        for expr in exprs:
            wait_for(f"data for {name}: {expr}", lambda e=expr: prometheus_query(e), timeout=60)
