"""Unit tests of the release modules' own logic (the engine itself is tested in module_utils)."""

from __future__ import annotations

import pytest
from helpers import load_plugin

release = load_plugin("plugins/modules/colors_release.py")
rollback = load_plugin("plugins/modules/colors_rollback.py")
ledger = load_plugin("plugins/modules/colors_release_ledger.py")


def _params(**overrides):
    base = {"namespace": "colors", "deployment": {"kind": "Deployment", "metadata": {"name": "colors"}},
            "prometheus": None}
    return base | overrides


def test_release_accepts_a_named_deployment():
    assert release.validate(_params()) is None


def test_release_refuses_a_manifest_that_is_not_a_deployment_naming_its_kind():
    assert "got kind='Service'" in release.validate(_params(deployment={"kind": "Service", "metadata": {"name": "x"}}))


def test_release_refuses_a_deployment_of_another_namespace():
    problem = release.validate(_params(deployment={"kind": "Deployment",
                                                   "metadata": {"name": "colors", "namespace": "other"}}))
    assert "'other' differs from namespace='colors'" in problem


def test_release_refuses_an_incomplete_prometheus_gate():
    problem = release.validate(_params(prometheus={"url": "http://p", "queries": [{"name": "x", "query": "up"}]}))
    assert "lacks max" in problem


def test_rollback_gives_the_engine_the_deployment_and_its_selector():
    params = rollback.engine_params({"namespace": "colors", "name": "colors", "poll_interval": 0.5,
                                     "selector": {"app.kubernetes.io/name": "colors"}})
    assert params["deployment"]["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "colors"}
    assert params["auto_rollback"] is False


def test_ledger_selects_entries_since_a_time_oldest_first():
    entries = [{"id": "2", "started": "2026-11-02T00:00:00Z"}, {"id": "1", "started": "2026-11-01T00:00:00Z"},
               {"id": "3", "started": "2026-11-03T00:00:00Z"}]
    assert [e["id"] for e in ledger.select(entries, None)] == ["1", "2", "3"]
    assert [e["id"] for e in ledger.select(entries, "2026-11-02T00:00:00Z")] == ["2", "3"]


def test_the_progress_writer_appends_each_report_time_stamped_and_says_nothing_without_a_file(tmp_path):
    path = tmp_path / "progress.log"
    with release.progress_writer(str(path)) as report:
        report("rolling colors to colors:1.1.0")
        assert path.read_text().endswith(" rolling colors to colors:1.1.0\n")  # flushed at once, for the follower
        report("colors: rollout healthy after 3s")
    lines = path.read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["rolling colors to colors:1.1.0",
                                                         "colors: rollout healthy after 3s"]
    assert all(len(line.split(" ", 1)[0]) == 8 for line in lines)  # HH:MM:SS
    with release.progress_writer(None) as report:
        report("nowhere")


def _series(alertname, times):
    return {"metric": {"__name__": "ALERTS", "alertname": alertname, "alertstate": "firing"},
            "values": [[t, "1"] for t in times]}


def test_firing_intervals_split_a_series_at_its_gaps_and_leave_one_still_firing_open():
    """ALERTS samples one evaluation (15 s) apart while an alert fires: a gap ends one firing; the last firing,
    sampled just now, still fires."""
    day = 1_796_515_200  # 2026-12-06T00:00:00Z
    burn = _series("ColorsAvailabilityBudgetBurnFast", [day + 15 * i for i in range(5)]  # 00:00:00 - 00:01:00
                   + [day + 3600 + 15 * i for i in range(3)])  # 01:00:00 - 01:00:30, then nothing
    slow = _series("ColorsLatencyBudgetBurnSlow", [day + 7200 + 15 * i for i in range(4)])  # until now
    fired = ledger.firing_intervals([slow, burn], now=day + 7200 + 50)
    assert fired == [
        {"alertname": "ColorsAvailabilityBudgetBurnFast", "starts_at": "2026-12-06T00:00:00Z",
         "ends_at": "2026-12-06T00:01:00Z"},
        {"alertname": "ColorsAvailabilityBudgetBurnFast", "starts_at": "2026-12-06T01:00:00Z",
         "ends_at": "2026-12-06T01:00:30Z"},
        {"alertname": "ColorsLatencyBudgetBurnSlow", "starts_at": "2026-12-06T02:00:00Z", "ends_at": None},
    ]
    assert ledger.firing_intervals([_series("X", [])], now=day) == []


def test_alerts_that_cannot_be_read_fail_the_report_in_one_line_naming_where():
    with pytest.raises(ledger.OperatorError) as err:
        ledger.read_alerts(None, {"url": "http://127.0.0.1:9"}, 'alertname="X"', 30, now=0)
    message = str(err.value)
    assert message.startswith("Release ledger: the SLO alerts could not be read from Prometheus at "
                              "http://127.0.0.1:9 (Prometheus at http://127.0.0.1:9 unreachable")
    assert "app_release_report_alerts=false" in message and "\n" not in message
