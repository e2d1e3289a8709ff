"""Unit tests of the release modules' own logic (the engine itself is tested in module_utils)."""

from __future__ import annotations

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
