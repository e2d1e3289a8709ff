"""The release_report filter: delivery metrics (DORA) computed from the release ledger, counting as failed changes
the releases the engine failed and those whose SLO burn-rate alert fired soon after they were promoted."""

from __future__ import annotations

import datetime
import statistics
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.colors.deploy.plugins.module_utils.colors_release_cluster import TIME_FORMAT as FORMAT

HOUR = 3600.0
DAY = 24 * HOUR
WEEK = 7 * DAY
MONTH = 30 * DAY

# The software delivery performance clusters of DORA's Accelerate State of DevOps report 2024: for each metric, the
# bound a team must be within for each level, best first (a rate: at most; a duration: under; deploys per day: at
# least). A team is placed per metric; overall, at its weakest metric.
LEVELS = ("elite", "high", "medium", "low")
DORA_2024 = {
    "deploys_per_day": (1.0, 1 / 7, 1 / 30, 0.0),  # on demand (several a day), daily-weekly, weekly-monthly, less
    "lead_time_seconds": (DAY, WEEK, MONTH, float("inf")),  # under a day, a week, a month, longer
    "change_failure_rate": (0.05, 0.20, 0.10, 1.0),  # as published: medium (10 %) below high (20 %) in 2024
    "time_to_restore_seconds": (HOUR, DAY, DAY, float("inf")),  # under an hour, a day, a day, longer
}


def _time(value: Any, what: str) -> datetime.datetime:
    try:
        return datetime.datetime.strptime(str(value), FORMAT).replace(tzinfo=datetime.UTC)
    except ValueError:
        raise AnsibleFilterError(f"release_report: {what} {value!r} is not a UTC time like 2026-11-27T12:00:00Z") \
            from None


def level(metric: str, value: float | None) -> str | None:
    """The DORA 2024 level of one metric's value (None: not measured)."""
    if value is None:
        return None
    for name, bound in zip(LEVELS, DORA_2024[metric], strict=True):
        if metric == "deploys_per_day":
            if value >= bound:
                return name
        elif metric == "change_failure_rate":  # at most; 2024's high (20 %) is looser than its medium (10 %)
            if value <= bound:
                return name
        elif value < bound:
            return name
    return "low"


def _alerts(alerts: Any) -> list[tuple[str, datetime.datetime, datetime.datetime | None]]:
    if not isinstance(alerts, list) or not all(isinstance(a, dict) and "alertname" in a and "starts_at" in a
                                               for a in alerts):
        raise AnsibleFilterError("release_report: alerts must be a list of {alertname, starts_at, ends_at} (ends_at "
                                 f"null while firing), got {alerts!r:.200}")
    return [(a["alertname"], _time(a["starts_at"], "alert starts_at"),
             _time(a["ends_at"], "alert ends_at") if a.get("ends_at") else None) for a in alerts]


def release_report(entries: Any, days: int = 30, now: str | None = None, alerts: Any = None,
                   late_window_minutes: int = 60) -> dict[str, Any]:
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise AnsibleFilterError(f"release_report: expects a list of ledger entries, got {entries!r:.200}")
    if int(days) < 1:
        raise AnsibleFilterError(f"release_report: days={days!r} must be at least 1")
    if int(late_window_minutes) < 0:
        raise AnsibleFilterError(f"release_report: late_window_minutes={late_window_minutes!r} must be at least 0")
    fired = sorted(_alerts(alerts or []), key=lambda a: a[1])
    done = [e for e in entries if e.get("finished")]
    end = _time(now, "now") if now else max((_time(e["finished"], "finished") for e in done), default=None)
    if end is None:
        return {"window_days": int(days), "releases": 0, "succeeded": 0, "failed": 0, "late_failures": [],
                "late_failures_counted": alerts is not None,
                "deploys_per_day": 0.0, "change_failure_rate": None, "lead_time_seconds": None,
                "mean_time_to_restore_seconds": None, "unrestored_failures": 0, "levels": {}, "level": None}
    start = end - datetime.timedelta(days=int(days))
    ordered = sorted(done, key=lambda e: _time(e["started"], "started"))
    window = [e for e in ordered if start <= _time(e["started"], "started") <= end]
    # Rollbacks restore, they are not changes: a manual rollback, and a rollback that released a version again.
    releases = [e for e in window if e.get("strategy") != "manual-rollback" and not e.get("rollback")]
    succeeded = [e for e in releases if e.get("verdict") == "succeeded"]
    # "aborted": stopped because another hand (a pre-empting rollback) changed the Deployment - a failed change too.
    failed = [e for e in releases if e.get("verdict") in ("failed", "rolled_back", "aborted")]
    restore_times, unrestored = [], 0

    def next_good(after: datetime.datetime) -> datetime.datetime | None:
        later = [e for e in ordered if e.get("verdict") == "succeeded" and _time(e["started"], "started") > after]
        return _time(later[0]["finished"], "finished") if later else None

    for failure in failed:
        began = _time(failure["started"], "started")
        if failure.get("verdict") == "rolled_back":
            restore_times.append((_time(failure["finished"], "finished") - began).total_seconds())
            continue
        restored = next_good(began)
        if restored:
            restore_times.append((restored - began).total_seconds())
        else:
            unrestored += 1
    # Late failures: a release the engine promoted, during whose first late_window_minutes of serving (until the
    # next change began) an SLO burn-rate alert began to fire. Restored when the alert resolved, or when the next
    # successful change finished, whichever came first.
    late = []
    for release in succeeded:
        promoted = _time(release["finished"], "finished")
        following = [e for e in ordered if _time(e["started"], "started") > promoted]
        until = promoted + datetime.timedelta(minutes=int(late_window_minutes))
        if following:
            until = min(until, _time(following[0]["started"], "started"))
        alert = next((a for a in fired if promoted <= a[1] < until), None)
        if alert is None:
            continue
        name, began, resolved = alert
        late.append({"version": release.get("version"), "id": release.get("id"), "alert": name,
                     "fired": began.strftime(FORMAT),
                     "after_promotion_seconds": (began - promoted).total_seconds()})
        candidates = [t for t in (resolved, next_good(began)) if t is not None]
        if candidates:
            restore_times.append((min(candidates) - began).total_seconds())
        else:
            unrestored += 1
    lead_times = [(_time(e["finished"], "finished") - _time(e["committed"], "committed")).total_seconds()
                  for e in succeeded if e.get("committed")]
    metrics = {
        "deploys_per_day": round(len(succeeded) / int(days), 3),
        "lead_time_seconds": statistics.median(lead_times) if lead_times else None,
        "change_failure_rate": round((len(failed) + len(late)) / len(releases), 3) if releases else None,
        "time_to_restore_seconds": round(sum(restore_times) / len(restore_times), 1) if restore_times else None,
    }
    levels = {m: level(m, v) for m, v in metrics.items() if v is not None}
    return {
        "window_days": int(days),
        "releases": len(releases),
        "succeeded": len(succeeded),
        "failed": len(failed) + len(late),
        "late_failures": late,
        # False when no alert history was given: a late failure could not be seen, so the rate may flatter.
        "late_failures_counted": alerts is not None,
        "deploys_per_day": metrics["deploys_per_day"],
        "change_failure_rate": metrics["change_failure_rate"],
        "lead_time_seconds": metrics["lead_time_seconds"],
        "mean_time_to_restore_seconds": metrics["time_to_restore_seconds"],
        "unrestored_failures": unrestored,
        "levels": levels,
        "level": max(levels.values(), key=LEVELS.index) if levels else None,
    }


class FilterModule:
    def filters(self):
        return {"release_report": release_report}
