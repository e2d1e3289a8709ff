"""Unit tests of the release_report filter (plugins/filter/release_report.py)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from helpers import load_plugin

report = load_plugin("plugins/filter/release_report.py").FilterModule().filters()[
    "release_report"]


def entry(day, hour, verdict, strategy="rolling", minutes=2):
    stamp = f"2026-11-{day:02d}T{hour:02d}"
    return {"started": f"{stamp}:00:00Z", "finished": f"{stamp}:{minutes:02d}:00Z", "verdict": verdict,
            "strategy": strategy}


LEDGER = [
    entry(1, 10, "succeeded"),
    entry(2, 10, "rolled_back", minutes=3),          # restored 180 s after it started
    entry(3, 10, "failed"),                          # restored by the next good release: 4 h 2 min later
    entry(3, 14, "succeeded"),
    entry(4, 9, "succeeded", strategy="manual-rollback"),
    entry(5, 10, "succeeded"),
]


def test_the_delivery_metrics_of_a_ledger():
    result = report(LEDGER, days=30)
    assert result["releases"] == 5 and result["succeeded"] == 3 and result["failed"] == 2
    assert result["deploys_per_day"] == round(3 / 30, 3)
    assert result["change_failure_rate"] == 0.4
    assert result["mean_time_to_restore_seconds"] == (180 + (4 * 3600 + 120)) / 2
    assert result["unrestored_failures"] == 0


def test_the_window_counts_back_from_now():
    result = report(LEDGER, days=3, now="2026-11-05T12:00:00Z")
    assert result["releases"] == 3 and result["failed"] == 1  # from Nov 2 12:00: Nov 3 10:00, 14:00, Nov 5


def test_a_failure_not_yet_restored_is_counted_apart():
    result = report([entry(1, 10, "succeeded"), entry(2, 10, "failed")], days=30)
    assert result["unrestored_failures"] == 1 and result["mean_time_to_restore_seconds"] is None


def test_a_release_a_rollback_pre_empted_is_a_failed_change_restored_by_that_rollback():
    result = report([entry(1, 10, "succeeded"), entry(2, 10, "aborted"),
                     entry(2, 11, "succeeded", strategy="manual-rollback", minutes=1)], days=30)
    assert result["releases"] == 2 and result["failed"] == 1 and result["change_failure_rate"] == 0.5
    assert result["unrestored_failures"] == 0


def test_a_blue_green_rollback_that_released_a_version_again_restores_and_is_no_change():
    """rollback.yml to a version of a blue-green release releases it again (strategy blue_green, rollback true): the
    failed change it restores is restored when it finished; it is neither a release nor a deploy."""
    rollback = {**entry(2, 11, "succeeded", strategy="blue_green", minutes=4), "rollback": True}
    result = report([entry(1, 10, "succeeded", strategy="blue_green"),
                     entry(2, 10, "failed", strategy="blue_green"), rollback], days=30)
    assert result["releases"] == 2 and result["succeeded"] == 1 and result["failed"] == 1
    assert result["deploys_per_day"] == round(1 / 30, 3)
    assert result["mean_time_to_restore_seconds"] == 3600 + 240 and result["unrestored_failures"] == 0


def test_an_empty_ledger_reports_no_rates():
    assert report([], days=7)["change_failure_rate"] is None


@pytest.mark.parametrize(("entries", "kwargs", "quoted"), [
    ("nonsense", {}, "'nonsense'"),
    ([entry(1, 10, "succeeded")], {"days": 0}, "days=0"),
    ([{"started": "yesterday", "finished": "2026-11-01T10:00:00Z", "verdict": "failed"}], {}, "'yesterday'"),
])
def test_bad_input_is_refused_quoting_it(entries, kwargs, quoted):
    with pytest.raises(AnsibleFilterError) as err:
        report(entries, **kwargs)
    assert quoted in str(err.value)


def _history(seed: int = 3):
    """A compressed history of 120 releases over 30 days with its ground truth: each release is committed, released
    and judged by the generator, which decides which fail in the engine (restored by their automatic rollback after
    a chosen time), which fail late (an SLO burn-rate alert fires a chosen time after promotion and resolves a chosen
    time later) and which are followed by an alert too late to be theirs."""
    import datetime
    import random

    rng = random.Random(seed)  # noqa: S311 # nosec B311 - a made-up history, not secrets
    t0 = datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC)

    def stamp(t):
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")

    entries, alerts = [], []
    truth = {"releases": 120, "engine": 0, "late": [], "restore": [], "lead": [], "succeeded": 0}
    for i in range(120):
        started = t0 + datetime.timedelta(hours=6 * i, minutes=rng.randrange(0, 60))
        lead = rng.randrange(600, 40000)  # seconds from commit to promotion
        kind = rng.choices(["ok", "engine", "late", "too-late"], weights=[70, 10, 10, 10])[0]
        if kind == "engine":
            restore = rng.randrange(60, 600)
            restored = started + datetime.timedelta(seconds=restore)
            entries.append({"id": str(i), "version": f"1.{i}.0", "strategy": "rolling", "verdict": "rolled_back",
                            "started": stamp(started), "finished": stamp(restored)})
            truth["engine"] += 1
            truth["restore"].append(restore)
            continue
        finished = started + datetime.timedelta(seconds=rng.randrange(30, 300))
        entries.append({"id": str(i), "version": f"1.{i}.0", "strategy": "blue_green", "verdict": "succeeded",
                        "started": stamp(started), "finished": stamp(finished),
                        "committed": stamp(finished - datetime.timedelta(seconds=lead))})
        truth["succeeded"] += 1
        truth["lead"].append(lead)
        if kind == "late":
            after, lasts = rng.randrange(0, 3000), rng.randrange(120, 1800)  # within the hour, resolved later
            fired = finished + datetime.timedelta(seconds=after)
            alerts.append({"alertname": "ColorsAvailabilityBudgetBurnFast", "starts_at": stamp(fired),
                           "ends_at": stamp(fired + datetime.timedelta(seconds=lasts))})
            truth["late"].append((str(i), after))
            truth["restore"].append(lasts)
        elif kind == "too-late":  # 70 min after promotion, before the next release: not this release's failure
            fired = finished + datetime.timedelta(minutes=70)
            alerts.append({"alertname": "ColorsLatencyBudgetBurnSlow", "starts_at": stamp(fired),
                           "ends_at": stamp(fired + datetime.timedelta(minutes=5))})
    return entries, alerts, truth


def test_a_compressed_history_of_120_releases_gives_the_four_metrics_exactly():
    import statistics

    entries, alerts, truth = _history()
    result = report(entries, days=31, now="2026-12-02T00:00:00Z", alerts=alerts, late_window_minutes=60)
    assert result["releases"] == truth["releases"] == 120
    assert result["succeeded"] == truth["succeeded"]
    assert [(f["id"], f["after_promotion_seconds"]) for f in result["late_failures"]] == truth["late"]
    assert {f["alert"] for f in result["late_failures"]} == {"ColorsAvailabilityBudgetBurnFast"}
    assert result["change_failure_rate"] == round((truth["engine"] + len(truth["late"])) / 120, 3)
    assert result["deploys_per_day"] == round(truth["succeeded"] / 31, 3)
    assert result["lead_time_seconds"] == statistics.median(truth["lead"])
    assert result["mean_time_to_restore_seconds"] == round(sum(truth["restore"]) / len(truth["restore"]), 1)
    assert result["unrestored_failures"] == 0
    # Without the alerts, the late failures count as successes: the rate the engine alone would report.
    engine_only = report(entries, days=31, now="2026-12-02T00:00:00Z")
    assert engine_only["change_failure_rate"] == round(truth["engine"] / 120, 3)


def test_the_report_places_each_metric_and_the_team_in_dora_s_2024_levels():
    entries, alerts, _ = _history()
    result = report(entries, days=31, now="2026-12-02T00:00:00Z", alerts=alerts)
    # About 3.4 promoted releases a day, a median lead time under a day, failures 15-25 %, restores within minutes.
    assert result["levels"]["deploys_per_day"] == "elite" and result["levels"]["lead_time_seconds"] == "elite"
    assert result["levels"]["time_to_restore_seconds"] == "elite"
    assert result["levels"]["change_failure_rate"] == ("high" if result["change_failure_rate"] <= 0.2 else "low")
    assert result["level"] == result["levels"]["change_failure_rate"]  # the team: at its weakest metric
    levels = load_plugin("plugins/filter/release_report.py")
    assert levels.level("deploys_per_day", 1 / 14) == "medium" and levels.level("deploys_per_day", 1 / 60) == "low"
    assert levels.level("lead_time_seconds", 3 * 86400) == "high"
    assert levels.level("time_to_restore_seconds", 2 * 86400) == "low"
    assert levels.level("change_failure_rate", 0.04) == "elite" and levels.level("change_failure_rate", 0.5) == "low"


def test_an_alert_must_be_named_and_timed():
    with pytest.raises(AnsibleFilterError, match="alerts must be a list of"):
        report(LEDGER, alerts=[{"starts_at": "2026-11-01T10:00:00Z"}])
    with pytest.raises(AnsibleFilterError, match="'soon'"):
        report(LEDGER, alerts=[{"alertname": "X", "starts_at": "soon"}])
