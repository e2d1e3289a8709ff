"""The release_report filter: delivery metrics (DORA) computed from the release ledger."""

from __future__ import annotations

import datetime
from typing import Any

from ansible.errors import AnsibleFilterError

FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def _time(value: Any, what: str) -> datetime.datetime:
    try:
        return datetime.datetime.strptime(str(value), FORMAT).replace(tzinfo=datetime.UTC)
    except ValueError:
        raise AnsibleFilterError(f"release_report: {what} {value!r} is not a UTC time like 2026-11-27T12:00:00Z") \
            from None


def release_report(entries: Any, days: int = 30, now: str | None = None) -> dict[str, Any]:
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise AnsibleFilterError(f"release_report: expects a list of ledger entries, got {entries!r:.200}")
    if int(days) < 1:
        raise AnsibleFilterError(f"release_report: days={days!r} must be at least 1")
    done = [e for e in entries if e.get("finished")]
    end = _time(now, "now") if now else max((_time(e["finished"], "finished") for e in done), default=None)
    if end is None:
        return {"window_days": int(days), "releases": 0, "succeeded": 0, "failed": 0, "deploys_per_day": 0.0,
                "change_failure_rate": None, "mean_time_to_restore_seconds": None, "unrestored_failures": 0}
    start = end - datetime.timedelta(days=int(days))
    ordered = sorted(done, key=lambda e: _time(e["started"], "started"))
    window = [e for e in ordered if start <= _time(e["started"], "started") <= end]
    releases = [e for e in window if e.get("strategy") != "manual-rollback"]
    succeeded = [e for e in releases if e.get("verdict") == "succeeded"]
    # "aborted": stopped because another hand (a pre-empting rollback) changed the Deployment - a failed change too.
    failed = [e for e in releases if e.get("verdict") in ("failed", "rolled_back", "aborted")]
    restore_times, unrestored = [], 0
    for failure in failed:
        began = _time(failure["started"], "started")
        if failure.get("verdict") == "rolled_back":
            restore_times.append((_time(failure["finished"], "finished") - began).total_seconds())
            continue
        later = [e for e in ordered if e.get("verdict") == "succeeded" and _time(e["started"], "started") > began]
        if later:
            restore_times.append((_time(later[0]["finished"], "finished") - began).total_seconds())
        else:
            unrestored += 1
    return {
        "window_days": int(days),
        "releases": len(releases),
        "succeeded": len(succeeded),
        "failed": len(failed),
        "deploys_per_day": round(len(succeeded) / int(days), 3),
        "change_failure_rate": round(len(failed) / len(releases), 3) if releases else None,
        "mean_time_to_restore_seconds": round(sum(restore_times) / len(restore_times), 1) if restore_times else None,
        "unrestored_failures": unrestored,
    }


class FilterModule:
    def filters(self):
        return {"release_report": release_report}
