"""Alerting end to end on the local platform: the monitoring role installs the rules and the routing into the real
Prometheus and Alertmanager; they scrape and blackbox-probe a running Colors container; the container is frozen
(an outage), the page arrives at the local receiver, the container resumes, the resolved notification arrives.
Every dashboard query is accepted by the same Prometheus."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from helpers import (
    APP_VERSION,
    ON_SIMULATED_NODES,
    PLATFORM,
    REPO,
    STATE,
    ansible_playbook,
    free_port,
    prometheus_query,
    recap,
    received_alerts,
    wait_for,
)

pytestmark = pytest.mark.platform
PORTS = PLATFORM["ports"]
PROMETHEUS = f"http://127.0.0.1:{PORTS['prometheus']}"
ALERTMANAGER = f"http://127.0.0.1:{PORTS['alertmanager']}"


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
        return json.load(response)


@pytest.fixture(scope="module")
def app(monitoring):
    """A Colors container, scraped as job "colors" and probed as job "colors-probe"."""
    port = free_port()
    name = f"colors-alerting-{port}"
    key = "alerting-test-only"  # pragma: allowlist secret
    subprocess.run(["docker", "run", "--detach", "--name", name, "--read-only", "--publish", f"127.0.0.1:{port}:8080",
                    "--env", "COLORS_STORE=memory", "--env", f"COLORS_API_KEY={key}",
                    f"localhost/colors:{APP_VERSION}"], check=True, capture_output=True)
    url = f"http://127.0.0.1:{port}/readyz"
    target = STATE / "prometheus" / "targets" / "colors-alerting.json"
    probe = STATE / "prometheus" / "probes" / "colors-alerting.json"
    try:
        wait_for("the container to turn ready", lambda: _ready(url), timeout=60, every=0.5)
        target.write_text(json.dumps([{"targets": [f"127.0.0.1:{port}"], "labels": {"job": "colors"}}]))
        probe.write_text(json.dumps([{"targets": [url], "labels": {"job": "colors-probe"}}]))
        wait_for("Prometheus to scrape and probe the container",
              lambda: prometheus_query(f'probe_success{{instance="{url}"}} == 1')
              and prometheus_query(f'up{{job="colors",instance="127.0.0.1:{port}"}} == 1'))
        yield name, url
    finally:
        target.unlink(missing_ok=True)
        probe.unlink(missing_ok=True)
        subprocess.run(["docker", "rm", "--force", name], capture_output=True, check=False)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
            return response.status == 200
    except OSError:
        return False


def test_the_monitoring_is_idempotent(monitoring):
    again = ansible_playbook("monitoring.yml", "-i", "inventories/local")
    assert again.returncode == 0 and recap(again)["changed"] == 0, again.stdout[-3000:]


def test_prometheus_evaluates_the_colors_rules_and_alertmanager_routes_them(monitoring):
    groups = _get(f"{PROMETHEUS}/api/v1/rules")["data"]["groups"]
    alerts = {r["name"] for g in groups if g["file"].endswith("colors.yml")
              for r in g["rules"] if r["type"] == "alerting"}
    assert len(alerts) == 13 and "ColorsEndpointDown" in alerts
    status = _get(f"{ALERTMANAGER}/api/v2/status")
    assert "receiver: page" in status["config"]["original"] and "receiver: ticket" in status["config"]["original"]


def test_an_outage_pages_and_its_recovery_resolves(app):
    name, url = app
    down = {"alertname": "ColorsEndpointDown", "instance": url}
    frozen = time.time()
    subprocess.run(["docker", "pause", name], check=True, capture_output=True)
    try:
        firing = wait_for("the ColorsEndpointDown page", lambda: received_alerts(frozen, "page", "firing", **down))
    finally:
        subprocess.run(["docker", "unpause", name], check=True, capture_output=True)
    assert firing[0]["labels"]["severity"] == "page" and firing[0]["labels"]["service"] == "colors"
    assert firing[0]["annotations"]["runbook_url"].endswith("docs/runbook.md#colorsendpointdown")
    assert not received_alerts(frozen, "ticket", "firing", **down)  # pages go to the pager only
    resolved = wait_for("the resolved notification", lambda: received_alerts(frozen, "page", "resolved", **down),
                        timeout=120)
    assert resolved[0]["endsAt"] > resolved[0]["startsAt"]
    assert prometheus_query(f'probe_success{{instance="{url}"}} == 1')


def test_a_silenced_outage_does_not_page(app):
    name, url = app
    amtool = ["amtool", f"--alertmanager.url={ALERTMANAGER}"]
    silence = subprocess.run([*amtool, "silence", "add", "alertname=ColorsEndpointDown", f"instance={url}",
                              "--duration=10m", "--author=tests", "--comment=maintenance drill"],
                             capture_output=True, text=True, check=True).stdout.strip()
    frozen = time.time()
    subprocess.run(["docker", "pause", name], check=True, capture_output=True)
    try:
        # Alertmanager holds the alert, marked silenced by this very silence ...
        held = wait_for("Alertmanager to hold the silenced alert", lambda: [
            a for a in _get(f"{ALERTMANAGER}/api/v2/alerts?silenced=true&inhibited=false")
            if a["labels"]["alertname"] == "ColorsEndpointDown" and a["labels"].get("instance") == url
            and silence in a["status"]["silencedBy"]])
        assert held[0]["status"]["state"] == "suppressed"
        # ... and the pager got nothing for it.
        assert not received_alerts(frozen, "page", "firing", alertname="ColorsEndpointDown", instance=url)
    finally:
        subprocess.run(["docker", "unpause", name], check=True, capture_output=True)
        subprocess.run([*amtool, "silence", "expire", silence], capture_output=True, check=False)


def test_every_dashboard_query_is_valid_promql(monitoring):
    dashboards = sorted((REPO / "roles" / "monitoring" / "files" / "dashboards").glob("*.json"))
    exprs = []
    for path in dashboards:
        data = json.loads(path.read_text())
        exprs += [t["expr"] for p in data["panels"] for t in p["targets"]]
        exprs += [a["expr"] for a in data.get("annotations", {}).get("list", [])]
    assert len(exprs) > 25
    for expr in exprs:
        try:
            answer = _get(f"{PROMETHEUS}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
        except urllib.error.HTTPError as exc:
            pytest.fail(f"Prometheus refuses {expr}: {exc.read().decode()[:300]}")
        assert answer["status"] == "success", expr


def test_each_recorded_release_becomes_a_marker_next_to_the_metrics(monitoring):
    version = f"0.9.{int(time.time())}"  # a release that has never run here: the engine records it
    result = ansible_playbook("deploy.yml", "-i", "inventories/local", *ON_SIMULATED_NODES,
                              "-e", f"app_release_version={version}")
    assert result.returncode == 0, result.stdout[-3000:]
    pushed = _get(f"http://127.0.0.1:{PORTS['pushgateway']}/api/v1/metrics")["data"]
    markers = [m for group in pushed for m in group.get("colors_release_timestamp_seconds", {}).get("metrics", [])
               if (m["labels"].get("namespace"), m["labels"].get("release")) == ("colors", "colors")]
    assert [(m["labels"]["version"], m["labels"]["verdict"]) for m in markers] == [(version, "succeeded")]
    assert abs(float(markers[0]["value"]) - time.time()) < 120
    # What the dashboards' "Releases" annotation queries: the marker appears beside the metrics.
    annotation = json.loads((REPO / "roles" / "monitoring" / "files" / "dashboards" / "colors-service.json")
                            .read_text())["annotations"]["list"][0]["expr"]
    found = wait_for("the marker in Prometheus", lambda: [r for r in prometheus_query(annotation)
                                                          if r["metric"].get("version") == version])
    assert found[0]["metric"]["strategy"] == "rolling" and found[0]["metric"]["ledger_id"]
