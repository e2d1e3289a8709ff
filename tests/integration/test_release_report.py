"""The release report of release_report.yml, read back as staging runs it: the ledger from the cluster as the
deployer, and when the SLO burn-rate alerts fired from a real Prometheus (its ALERTS series, through the report's
own query) - a release promoted whose alert fired within the hour after counts as a failed change (a late
failure), one whose alert fired later does not, and the lead time runs from each release's commit.

The history is compressed and its ground truth known: the ledger entries are written into a namespace of their
own, and the alert history is a Prometheus TSDB made for the purpose (`promtool tsdb create-blocks-from
openmetrics`, as issue #21 asks), served by a Prometheus of this test beside the platform's, which keeps its own
series. The report's filter is tested on 120 releases in tests/unit/plugins/filter; this module proves the path
from the stores to the report."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
import urllib.parse
import urllib.request

import pytest
from helpers import ON_SIMULATED_NODES, STATE, ansible_playbook, free_port, headless_page, wait_for

pytestmark = pytest.mark.platform
NS = "report"
RELEASE = "colors"
HOUR = datetime.timedelta(hours=1)
FORMAT = "%Y-%m-%dT%H:%M:%SZ"
ARGS = ("-i", "inventories/local", *ON_SIMULATED_NODES, "-e", f"app_release_namespace={NS}",
        "-e", f"cluster_bootstrap_app_namespace={NS}")


def _at(moment: datetime.datetime) -> str:
    return moment.strftime(FORMAT)


# Six hours of history, hour by hour (t0 = 7 hours ago): (version, verdict, committed before its start, the SLO
# alert that fired after its promotion: minutes after, minutes it lasted). 1.0.1 burned its budget 20 minutes after
# it was promoted (a late failure, restored when the alert resolved 10 minutes later); 1.0.3 was failed by the
# engine's gates (rolled back); 1.0.5's alert fired 75 minutes after its promotion - past the 60-minute window: not
# its failure. (An alert is a release's only while it serves: one that fired after the next release was promoted
# would be the next one's.)
HISTORY = [
    ("1.0.0", "succeeded", 2 * HOUR, None),
    ("1.0.1", "succeeded", 3 * HOUR, ("ColorsAvailabilityBudgetBurnFast", 20, 10)),
    ("1.0.2", "succeeded", 4 * HOUR, None),
    ("1.0.3", "rolled_back", 1 * HOUR, None),
    ("1.0.4", "succeeded", 6 * HOUR, None),
    ("1.0.5", "succeeded", 8 * HOUR, ("ColorsLatencyBudgetBurnSlow", 75, 5)),
]


JUDGED = {"state": "failed", "judge_state": "fail", "score": 0.0, "looks": 4, "seconds": 30.0, "interval": 10,
          "metrics": [{"metric": "error-ratio", "outcome": "fail", "reason": "the canary is worse by 0.048 (tolerance "
                       "0.005), p=1e-09 < 0.001", "canary": {"bad": 30, "total": 600},
                       "baseline": {"bad": 1, "total": 610}}],
          "series": {"error-ratio": {"canary": [0.04, 0.05, 0.06, 0.05], "baseline": [0.0, 0.002, 0.0, 0.001]}}}


@pytest.fixture(scope="module")
def history(k8s):
    """The namespace bootstrapped as staging's is, its ledger written with HISTORY (the engine's entry format); the
    alerts as (alertname, starts, ends)."""
    from kubernetes import client

    core, _, api = k8s
    booted = ansible_playbook("bootstrap.yml", *ARGS)
    assert booted.returncode == 0, booted.stdout[-3000:]
    t0 = datetime.datetime.now(datetime.UTC).replace(microsecond=0) - 7 * HOUR
    entries, alerts = [], []
    for i, (version, verdict, lead, alert) in enumerate(HISTORY):
        started = t0 + i * HOUR
        finished = started + datetime.timedelta(minutes=3)
        entry = {"id": started.strftime("%Y%m%d%H%M%S000000"), "actor": "report-test", "version": version,
                 "image": f"localhost/colors:{version}", "strategy": "rolling", "started": _at(started),
                 "finished": _at(finished), "verdict": verdict, "committed": _at(started - lead),
                 "previous_image": None}
        if verdict == "rolled_back":  # a canary the judge failed, its analysis as the engine records it
            entry |= {"strategy": "canary", "gate": "judge", "steps": [{"percent": 25, "canary": 1, "stable": 3,
                                                                        "state": "failed", "judge": JUDGED}]}
        entries.append(entry)
        core.create_namespaced_config_map(NS, {
            "metadata": {"name": f"{RELEASE}-release-{entry['id']}",
                         "labels": {"colors.io/release-ledger": RELEASE, "app.kubernetes.io/part-of": "colors"}},
            "data": {"entry": json.dumps(entry, sort_keys=True)}})
        if alert:
            name, after, lasting = alert
            begins = finished + datetime.timedelta(minutes=after)
            alerts.append((name, begins, begins + datetime.timedelta(minutes=lasting)))
    yield entries, alerts
    core.delete_namespace(NS)
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.delete_cluster_role_binding(f"colors-deployer-namespace-{NS}")
    rbac.delete_cluster_role(f"colors-deployer-namespace-{NS}")


@pytest.fixture(scope="module")
def prometheus(history, tmp_path_factory):
    """A Prometheus of this test whose TSDB holds the alert history as the platform's Prometheus records it (ALERTS,
    one sample per 15 s evaluation while firing), made by promtool from OpenMetrics."""
    _, alerts = history
    work = tmp_path_factory.mktemp("prometheus")
    lines = ["# TYPE ALERTS gauge"]
    for name, begins, ends in alerts:
        moment = begins
        while moment <= ends:
            lines.append(f'ALERTS{{alertname="{name}",alertstate="firing",job="colors",severity="page"}} 1 '
                         f"{int(moment.timestamp())}")
            moment += datetime.timedelta(seconds=15)
        # what Prometheus also records: the same alert pending before it fires, which the report must not count
        lines.append(f'ALERTS{{alertname="{name}",alertstate="pending",job="colors",severity="page"}} 1 '
                     f"{int((begins - datetime.timedelta(seconds=15)).timestamp())}")
    (work / "alerts.om").write_text("\n".join(lines) + "\n# EOF\n")
    made = subprocess.run([str(STATE / "bin" / "promtool"), "tsdb", "create-blocks-from", "openmetrics",
                           str(work / "alerts.om"), str(work / "data")], capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stdout + made.stderr
    (work / "prometheus.yml").write_text("global: {}\n")
    port = free_port()
    with open(work / "prometheus.log", "w") as log:
        server = subprocess.Popen([str(STATE / "bin" / "prometheus"), f"--config.file={work / 'prometheus.yml'}",
                                   f"--storage.tsdb.path={work / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                                   "--storage.tsdb.retention.time=30d"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("the test's Prometheus to load the alert history", lambda: _series(url) == len(alerts) * 2,
                 timeout=60, every=0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def _series(url: str) -> int:
    try:
        query = urllib.parse.urlencode({"query": "count(count_over_time(ALERTS[1d]))"})
        with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=5) as answer:  # noqa: S310 - loopback
            result = json.load(answer)["data"]["result"]
    except OSError:
        return -1
    return int(result[0]["value"][1]) if result else 0


def _report(*extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    """release_report.yml as the deployer; the report's fields read from its YAML output."""
    result = ansible_playbook("release_report.yml", *ARGS, "-e", "app_release_report_days=1", *extra)
    report = {}
    for key in ("releases", "succeeded", "failed", "change_failure_rate", "lead_time_seconds",
                "late_failures_counted", "mean_time_to_restore_seconds", "unrestored_failures"):
        match = re.search(rf"^\s+{key}: (\S+)$", result.stdout, re.MULTILINE)
        report[key] = match.group(1) if match else None
    return result, report


def test_a_release_whose_slo_alert_fired_within_the_hour_after_promotion_is_a_failed_change(history, prometheus):
    result, report = _report("-e", f"app_release_prometheus_url={prometheus}")
    assert result.returncode == 0, result.stdout[-3000:]
    # 6 releases: 1.0.3 failed by the engine, 1.0.1 late (its alert 20 min after promotion), 1.0.5's alert too late
    assert (report["releases"], report["succeeded"], report["failed"]) == ("6", "5", "2"), report
    assert report["change_failure_rate"] == "0.333" and report["late_failures_counted"] == "true"
    late = re.search(r"late_failures:\n((?:\s+.*\n)+?)\s+late_failures_counted", result.stdout).group(1)
    assert "alert: ColorsAvailabilityBudgetBurnFast" in late and "version: 1.0.1" in late, late
    assert "after_promotion_seconds: 1200.0" in late and "1.0.5" not in late, late
    # lead time: the median of the succeeded releases' commit-to-promotion (2, 3, 4, 6, 8 hours, +3 min each)
    assert float(report["lead_time_seconds"]) == 4 * 3600 + 180
    # restored: 1.0.3 by its own rollback (3 min), 1.0.1 when its alert resolved (10 min)
    assert float(report["mean_time_to_restore_seconds"]) == (180 + 600) / 2
    assert report["unrestored_failures"] == "0"


def test_without_alerts_the_report_says_late_failures_were_not_counted(history, prometheus):
    result, report = _report("-e", f"app_release_prometheus_url={prometheus}", "-e", "app_release_report_alerts=false")
    assert result.returncode == 0, result.stdout[-3000:]
    assert (report["failed"], report["late_failures_counted"]) == ("1", "false"), report


def test_a_prometheus_that_does_not_answer_fails_the_report_in_one_line(history):
    port = free_port()
    result, _ = _report("-e", f"app_release_prometheus_url=http://127.0.0.1:{port}")
    said = " ".join(result.stdout.split())
    assert result.returncode != 0
    assert (f"Release ledger: the SLO alerts could not be read from Prometheus at http://127.0.0.1:{port} "
            f"(Prometheus at http://127.0.0.1:{port} unreachable") in said, said[-2000:]
    assert "-e app_release_report_alerts=false" in said


def test_the_report_page_opens_in_a_headless_browser_with_its_charts_and_the_judged_canary(history, prometheus,
                                                                                           tmp_path):
    """release_report.yml writes the page and names it in the job summary; Debian's Chromium, driven by Playwright,
    opens it: every chart is an image the browser decoded, the level and the late failure are there, and the
    judged canary is shown with its series beside its decision."""
    page_path, summary = tmp_path / "report.html", tmp_path / "summary.md"
    result, _ = _report("-e", f"app_release_prometheus_url={prometheus}", "-e", f"app_release_report_page={page_path}",
                        "-e", f"app_release_summary_path={summary}")
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"The page with the timeline, the weeks and each judged canary: `{page_path}`" in summary.read_text()
    assert "6 releases, 2 failed changes, DORA 2024 level" in summary.read_text()
    with headless_page() as (page, errors):
        page.goto(page_path.as_uri(), wait_until="load")
        drawn = page.evaluate("() => Array.from(document.images).map(i => [i.alt, i.complete && i.naturalWidth])")
        assert drawn and all(width > 0 for _, width in drawn), drawn  # each chart decoded as an image
        assert [alt for alt, _ in drawn] == ["timeline of releases", "Deploys per day week by week",
                                             "Lead time, median (s) week by week",
                                             "Change failure rate week by week",
                                             "Time to restore, mean (s) week by week",
                                             "1.0.3 step 25 % error-ratio"]
        assert page.locator("#level").inner_text() in ("elite", "high", "medium", "low")
        text = page.locator("body").inner_text()
        assert "1.0.1: ColorsAvailabilityBudgetBurnFast fired 1200 s after its promotion" in text
        assert "1.0.3 - step 25 %: failed (score 0.0, 4 looks, 30.0 s)" in text
        assert errors == []
