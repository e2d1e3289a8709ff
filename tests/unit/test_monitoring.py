"""The alerting of Colors as the monitoring role renders it for each environment: promtool checks the rules and runs
a firing and a quiet case for every alert, amtool checks the Alertmanager routing, and the dashboards are the ones
their generator writes, readable by Grafana's schema-generated models."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from helpers import REPO, ansible_playbook

ENVIRONMENTS = ("local", "staging", "prod")
RECEIVERS = {"page": "https://pager.example.com/hooks/colors", "ticket": "https://queue.example.com/hooks/colors"}


@pytest.fixture(scope="session")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("monitoring")
    for env in ENVIRONMENTS:
        extra = [] if env == "local" else ["-e", json.dumps({"monitoring_receivers": RECEIVERS})]
        result = ansible_playbook("tests/monitoring/render.yml", "-i", f"inventories/{env}", "-e",
                                  f"monitoring_render_dir={root / env}", *extra)
        assert result.returncode == 0, result.stdout[-3000:]
    return root


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed (`make toolchain` installs the Debian package): this check did not run"
    return path


def _alerts(rules_file) -> dict[str, dict]:
    groups = yaml.safe_load(rules_file.read_text())["groups"]
    return {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_promtool_accepts_the_rules_of_each_environment(rendered, env):
    result = subprocess.run([_tool("promtool"), "check", "rules", str(rendered / env / "rules.yml")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 21 rules found" in result.stdout


def test_promtool_rejects_a_broken_rule(tmp_path):
    broken = tmp_path / "rules.yml"
    broken.write_text("groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: sum(rate(x[5m])\n")
    assert subprocess.run([_tool("promtool"), "check", "rules", str(broken)], capture_output=True,
                          check=False).returncode != 0


def test_staging_alerts_exactly_as_prod(rendered):
    for name in ("rules.yml", "alertmanager.yml"):
        assert (rendered / "staging" / name).read_text() == (rendered / "prod" / name).read_text(), name


def test_locally_alerts_fire_within_seconds(rendered):
    assert {r["for"] for r in _alerts(rendered / "local" / "rules.yml").values()} == {"4s"}


# --- promtool unit tests: each alert firing, and quiet, on prod's thresholds ------------------------------------

APP = {"job": "colors"}
KSM = {"namespace": "colors"}


def _series(name: str, labels: dict, values: str) -> dict:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def _requests(ok: str, errors: str) -> list[dict]:
    return [_series("colors_http_requests_total", {**APP, "status": "200"}, ok),
            _series("colors_http_requests_total", {**APP, "status": "500"}, errors)]


def _latency(fast: str, total: str) -> list[dict]:
    return [_series("colors_http_request_duration_seconds_bucket", {**APP, "le": "0.5"}, fast),
            _series("colors_http_request_duration_seconds_count", APP, total)]


PROBE = {"job": "colors-probe", "instance": "https://colors.example.com/readyz"}
TARGET = {"job": "colors", "instance": "10.40.128.10:8080"}
CRASH = {**KSM, "pod": "colors-7d9f-abcde", "container": "colors", "reason": "CrashLoopBackOff"}
DEPLOY = {**KSM, "deployment": "colors"}
PROGRESSING = {**DEPLOY, "condition": "Progressing", "status": "false"}
NODE = {"node": "ip-10-40-128-10", "condition": "Ready", "status": "true"}
FS = {"instance": "ip-10-40-128-10", "fstype": "ext4", "mountpoint": "/"}

# alert -> (firing case, quiet case); each case: series, the evaluation time, and (firing) the alert's labels.
CASES = {
    "ColorsAvailabilityBudgetBurnFast": ((_requests("0+100x120", "0+10x120"), "70m", APP),
                                         (_requests("0+100x120", "0+1x120"), "70m")),
    "ColorsAvailabilityBudgetBurnSlow": ((_requests("0+100x120", "0+1x120"), "70m", APP),
                                         (_requests("0+1000x120", "0+1x120"), "70m")),
    "ColorsLatencyBudgetBurnFast": ((_latency("0+70x120", "0+100x120"), "70m", APP),
                                    (_latency("0+90x120", "0+100x120"), "70m")),
    "ColorsLatencyBudgetBurnSlow": ((_latency("0+90x120", "0+100x120"), "70m", APP),
                                    (_latency("0+99x120", "0+100x120"), "70m")),
    "ColorsHighErrorRatio": ((_requests("0+100x120", "0+10x120"), "70m", APP),
                             (_requests("0+100x120", "0+3x120"), "70m")),
    "ColorsEndpointDown": (([_series("probe_success", PROBE, "1 1 1 0 0 0 0 0 0")], "8m", PROBE),
                           ([_series("probe_success", PROBE, "1 1 1 0 1 0 1 1 1")], "8m")),
    "ColorsTargetDown": (([_series("up", TARGET, "1 1 0 0 0 0 0 0")], "7m", TARGET),
                         ([_series("up", TARGET, "1x8")], "7m")),
    "ColorsPodCrashLooping": (([_series("kube_pod_container_status_waiting_reason", CRASH, "1x20")], "10m", CRASH),
                              ([_series("kube_pod_container_status_waiting_reason", CRASH, "0x20")], "10m")),
    "ColorsDeploymentReplicasMismatch": (
        ([_series("kube_deployment_spec_replicas", DEPLOY, "3x30"),
          _series("kube_deployment_status_replicas_available", DEPLOY, "2x30")], "20m", DEPLOY),
        ([_series("kube_deployment_spec_replicas", DEPLOY, "3x30"),
          _series("kube_deployment_status_replicas_available", DEPLOY, "2x5 3x25")], "20m")),
    "ColorsRolloutStuck": (
        ([_series("kube_deployment_status_condition", PROGRESSING, "1x30")], "20m", PROGRESSING),
        ([_series("kube_deployment_status_condition", PROGRESSING, "0x30"),
          _series("kube_deployment_status_observed_generation", DEPLOY, "4x30"),
          _series("kube_deployment_metadata_generation", DEPLOY, "4x30")], "20m")),
    "KubeNodeNotReady": (([_series("kube_node_status_condition", NODE, "0x10")], "6m", NODE),
                         ([_series("kube_node_status_condition", NODE, "1x10")], "6m")),
    "NodeFilesystemAlmostFull": (
        ([_series("node_filesystem_avail_bytes", FS, "5x30"), _series("node_filesystem_size_bytes", FS, "100x30")],
         "20m", FS),
        ([_series("node_filesystem_avail_bytes", FS, "50x30"), _series("node_filesystem_size_bytes", FS, "100x30")],
         "20m")),
    "NodeHighCpu": (
        ([_series("node_cpu_seconds_total", {"instance": FS["instance"], "cpu": "0", "mode": "idle"}, "0+3x30")],
         "25m", {"instance": FS["instance"]}),
        ([_series("node_cpu_seconds_total", {"instance": FS["instance"], "cpu": "0", "mode": "idle"}, "0+50x30")],
         "25m")),
}


def _annotations(rule: dict, labels: dict) -> dict:
    def fill(text: str) -> str:
        return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], text)
    return {k: fill(v) for k, v in rule["annotations"].items()}


def _promtool_tests(rules: dict) -> dict:
    tests = []
    for alert, (firing, quiet) in CASES.items():
        series, at, labels = firing
        expected = {**labels, **rules[alert]["labels"]}
        tests.append({"interval": "1m", "input_series": series, "alert_rule_test": [
            {"eval_time": at, "alertname": alert,
             "exp_alerts": [{"exp_labels": expected, "exp_annotations": _annotations(rules[alert], expected)}]}]})
        series, at = quiet
        tests.append({"interval": "1m", "input_series": series,
                      "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": []}]})
    return {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests}


def test_every_alert_has_a_firing_and_a_quiet_case():
    template = (REPO / "roles" / "monitoring" / "templates" / "rules.yml.j2").read_text()
    names = set(re.findall(r"^\s+- alert: (\w+)$", template, flags=re.M))
    assert names == set(CASES) and len(names) == 13


def test_promtool_fires_every_alert_and_keeps_it_quiet_otherwise(rendered, tmp_path):
    shutil.copy(rendered / "prod" / "rules.yml", tmp_path / "rules.yml")
    (tmp_path / "alerts.test.yml").write_text(yaml.safe_dump(_promtool_tests(_alerts(tmp_path / "rules.yml"))))
    result = subprocess.run([_tool("promtool"), "test", "rules", str(tmp_path / "alerts.test.yml")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "SUCCESS" in result.stdout


def test_promtool_reports_an_alert_that_did_not_fire(rendered, tmp_path):
    shutil.copy(rendered / "prod" / "rules.yml", tmp_path / "rules.yml")
    tests = _promtool_tests(_alerts(tmp_path / "rules.yml"))
    tests["tests"][0]["input_series"] = _requests("0+100x120", "0+0x120")  # no errors: the fast burn cannot fire
    (tmp_path / "alerts.test.yml").write_text(yaml.safe_dump(tests))
    result = subprocess.run([_tool("promtool"), "test", "rules", str(tmp_path / "alerts.test.yml")],
                            capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "ColorsAvailabilityBudgetBurnFast" in result.stdout + result.stderr


def test_every_alert_has_a_severity_and_a_runbook_section(rendered):
    runbook = (REPO / "docs" / "runbook.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", runbook, re.M)}
    for name, rule in _alerts(rendered / "prod" / "rules.yml").items():
        assert rule["labels"]["severity"] in ("page", "ticket"), name
        url = rule["annotations"]["runbook_url"]
        assert url.startswith("https://github.com/colors/colors-deploy/blob/main/docs/runbook.md#"), name
        assert url.split("#")[1] in anchors, f"{name}: no section {url.split('#')[1]} in docs/runbook.md"


# --- Alertmanager ------------------------------------------------------------------------------------------------

def _amtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([_tool("amtool"), *args], capture_output=True, text=True, check=False)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_amtool_accepts_the_alertmanager_configuration(rendered, env):
    result = _amtool("check-config", str(rendered / env / "alertmanager.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 inhibit rules" in result.stdout and "2 receivers" in result.stdout


@pytest.mark.parametrize(("labels", "receiver"), [
    (["alertname=ColorsEndpointDown", "severity=page", "service=colors"], "page"),
    (["alertname=ColorsHighErrorRatio", "severity=ticket", "service=colors"], "ticket"),
    (["alertname=SomethingNew", "service=colors"], "ticket"),
])
def test_amtool_routes_pages_and_tickets(rendered, labels, receiver):
    result = _amtool("config", "routes", "test", f"--config.file={rendered / 'prod' / 'alertmanager.yml'}",
                     f"--verify.receivers={receiver}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_route_check_can_fail(rendered):
    result = _amtool("config", "routes", "test", f"--config.file={rendered / 'prod' / 'alertmanager.yml'}",
                     "--verify.receivers=ticket", "severity=page")
    assert result.returncode != 0


def test_the_receiver_urls_are_secrets_and_only_in_the_mode_0600_file(rendered):
    config = rendered / "prod" / "alertmanager.yml"
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    assert RECEIVERS["page"] in config.read_text()


# --- dashboards ---------------------------------------------------------------------------------------------------

DASHBOARDS = sorted((REPO / "roles" / "monitoring" / "files" / "dashboards").glob("*.json"))


def test_the_dashboards_are_what_their_generator_writes(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "roles" / "monitoring" / "dashboards.py"), "--out",
                             str(tmp_path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [p.name for p in DASHBOARDS] and len(DASHBOARDS) == 3
    for path in DASHBOARDS:
        assert (tmp_path / path.name).read_text() == path.read_text(), f"{path.name}: run `make dashboards`"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_each_dashboard_reads_back_through_grafanas_schema_models(path):
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import Dashboard

    data = json.loads(path.read_text())
    model = Dashboard.from_json(data)
    assert json.loads(JSONEncoder(sort_keys=True).encode(model)) == data
    assert data["schemaVersion"] >= 36 and data["uid"].startswith("colors-")
    panels = data["panels"]
    assert len(panels) >= 4
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert ref_ids and len(set(ref_ids)) == len(ref_ids) and all(ref_ids), panel["title"]
    cells = [(x, y) for p in panels for x in range(p["gridPos"]["x"], p["gridPos"]["x"] + p["gridPos"]["w"])
             for y in range(p["gridPos"]["y"], p["gridPos"]["y"] + p["gridPos"]["h"])]
    assert len(cells) == len(set(cells)), "panels overlap"


def test_the_sources_file_names_every_panel_and_every_alert(rendered):
    """roles/monitoring/dashboard-sources.yml says what feeds each panel and alert here (or why nothing can)."""
    sources = yaml.safe_load((REPO / "roles" / "monitoring" / "dashboard-sources.yml").read_text())
    panels = {f"{path.stem}/{panel['title']}"
              for path in (REPO / "roles" / "monitoring" / "files" / "dashboards").glob("*.json")
              for panel in json.loads(path.read_text())["panels"]}
    assert set(sources["panels"]) == panels
    assert all(("source" in e) != ("missing" in e) for e in sources["panels"].values())
    assert set(sources["alerts"]) == set(_alerts(rendered / "local" / "rules.yml"))
    assert all(e["source"] and e["fired_by"] for e in sources["alerts"].values())
