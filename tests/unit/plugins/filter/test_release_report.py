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
