#!/usr/bin/python
"""Ansible module colors_release_ledger: read the release ledger back from the cluster."""

from __future__ import annotations

DOCUMENTATION = r"""
module: colors_release_ledger
short_description: Read the release ledger of a Colors release back from the cluster
description:
  - Every release attempt of the release engine (M(colors.deploy.colors_release),
    M(colors.deploy.colors_rollback)) is a ConfigMap labelled C(colors.io/release-ledger=<release>) in the
    application namespace. This module returns them, oldest first, optionally only those started since a date.
  - Read-only; check mode returns the same entries.
  - The C(colors.deploy.release_report) filter turns the entries into deploy frequency, change failure rate and
    mean time to restore.
  - With O(prometheus), it also returns when the SLO burn-rate alerts fired (Prometheus' C(ALERTS) series), so that
    the report counts as failed a release whose alert fired soon after it was promoted (a late failure).
options:
  namespace:
    description: Namespace of the release.
    type: str
    required: true
  release:
    description: Name of the release (the Deployment).
    type: str
    default: colors
  since:
    description: Only entries started at or after this UTC time (C(YYYY-MM-DDTHH:MM:SSZ)).
    type: str
  prometheus:
    description:
      - The Prometheus whose C(ALERTS) series say when the alerts of O(alert_match) fired - by URL, or by Service
        through the API server's service proxy (as the release gates reach it in staging and prod). Omitted - no
        alert is read.
      - One that does not answer fails the run in one line naming it - a report that silently lacks the late
        failures would flatter the change failure rate.
    type: dict
    suboptions:
      url:
        description: Base URL of the Prometheus HTTP API.
        type: str
      service:
        description: The Prometheus Service (C(namespace), C(name), C(port)).
        type: dict
  alert_match:
    description: Label matchers of the alerts that make a release a late failure (the SLO burn-rate alerts).
    type: str
    default: alertname=~"Colors(Availability|Latency)BudgetBurn(Fast|Slow)"
  alert_days:
    description: Days of alert history read (the report's window).
    type: int
    default: 30
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ansible.builtin.action_common_attributes
  - colors.deploy.common
attributes:
  check_mode:
    support: full
    details: Read-only; returns the same entries.
"""

EXAMPLES = r"""
- name: Read the ledger
  colors.deploy.colors_release_ledger:
    namespace: colors
  register: ledger

- name: Report the delivery metrics of the last 30 days
  ansible.builtin.debug:
    msg: "{{ ledger.entries | colors.deploy.release_report(days=30) }}"

- name: Read the ledger and when the SLO alerts fired, through the API server's service proxy
  colors.deploy.colors_release_ledger:
    namespace: colors
    prometheus:
      service: {namespace: monitoring, name: monitoring-prometheus, port: http-web}
  register: ledger

- name: Count the releases whose SLO alert fired within an hour of their promotion as failed changes
  ansible.builtin.debug:
    msg: "{{ ledger.entries | colors.deploy.release_report(days=30, alerts=ledger.alerts, late_window_minutes=60) }}"
"""

RETURN = r"""
entries:
  description: Ledger entries, oldest first - id, actor, version, image, strategy, started, finished, verdict,
    gate, evidence, rollback_target, previous_image, verdict_seconds.
  returned: always
  type: list
  elements: dict
alerts:
  description: Each time an alert of O(alert_match) fired - C(alertname), C(starts_at), C(ends_at) (null while it
    still fires), UTC - oldest first; empty without O(prometheus).
  returned: always
  type: list
  elements: dict
alerts_source:
  description: Where the alerts were read (the Prometheus URL, or its Service and the route to it); null without
    O(prometheus).
  returned: always
  type: str
"""

from ansible_collections.colors.deploy.plugins.module_utils.colors_k8s import (  # noqa: E402, F401
    AUTH_ARG_SPEC,
    OperatorError,
    run_module,
)
from ansible_collections.colors.deploy.plugins.module_utils.colors_k8s import (  # noqa: E402
    argument_spec as k8s_argument_spec,
)
from ansible_collections.colors.deploy.plugins.module_utils.colors_release_cluster import (  # noqa: E402
    TIME_FORMAT,
    ClusterApi,
)
from ansible_collections.colors.deploy.plugins.module_utils.colors_release_watch import (  # noqa: E402
    prometheus_query,
    service_target,
    url_target,
)


def argument_spec() -> dict:
    return k8s_argument_spec(
        namespace=dict(type="str", required=True),
        release=dict(type="str", default="colors"),
        since=dict(type="str"),
        prometheus=dict(type="dict", options=dict(url=dict(type="str"), service=dict(type="dict"))),
        alert_match=dict(type="str", default='alertname=~"Colors(Availability|Latency)BudgetBurn(Fast|Slow)"'),
        alert_days=dict(type="int", default=30),
    )


def select(entries: list[dict], since: str | None) -> list[dict]:
    chosen = [e for e in entries if since is None or e.get("started", "") >= since]
    return sorted(chosen, key=lambda e: (e.get("started", ""), e.get("id", "")))


def firing_intervals(result: list[dict], now: float) -> list[dict]:
    """The times each alert fired, from the raw samples of ALERTS{alertstate="firing"} (a range query's matrix):
    a series' samples come one rule evaluation apart while it fires, so a gap of more than twice its usual spacing
    (at least a minute) ends one firing and the next sample begins another. A firing whose last sample is within
    that gap of `now` still fires (ends_at null)."""
    import datetime
    import itertools
    import statistics

    def at(seconds: float) -> str:
        return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime(TIME_FORMAT)

    fired = []
    for series in result:
        times = sorted(float(t) for t, _ in series.get("values", []))
        if not times:
            continue
        spacing = statistics.median([b - a for a, b in itertools.pairwise(times)] or [60.0])
        gap = max(2 * spacing, 60.0)
        begin = last = times[0]
        for t in [*times[1:], None]:
            if t is not None and t - last <= gap:
                last = t
                continue
            fired.append({"alertname": series["metric"].get("alertname", ""), "starts_at": at(begin),
                          "ends_at": None if t is None and now - last <= gap else at(last)})
            if t is not None:
                begin = last = t
    return sorted(fired, key=lambda a: (a["starts_at"], a["alertname"]))


def read_alerts(api: ClusterApi, prometheus: dict, match: str, days: int, now: float) -> tuple[list[dict], str]:
    """(firing intervals, where they were read) of the alerts matching `match` over the last `days` days."""
    service = prometheus.get("service")
    target = (service_target(api, service["namespace"], service["name"], str(service["port"])) if service
              else url_target(prometheus["url"]))
    query = f'ALERTS{{alertstate="firing",{match}}}[{int(days)}d]'
    answer = prometheus_query(target, query)
    if answer.get("status") != "success":
        raise OperatorError(f"Release ledger: the SLO alerts could not be read from Prometheus at {target.where} "
                            f"({answer.get('error', answer)}); without them the report would count no late failure. "
                            "Run it again once Prometheus answers, or without a Prometheus "
                            "(-e app_release_report_alerts=false) to report the ledger alone.")
    return firing_intervals(answer["data"]["result"], now), target.where


def main() -> None:
    import time

    def body(module, client):
        api = ClusterApi(client.client)
        entries = api.ledger(module.params["namespace"], module.params["release"])
        prometheus = {k: v for k, v in (module.params["prometheus"] or {}).items() if v}
        alerts, source = [], None
        if prometheus:
            alerts, source = read_alerts(api, prometheus, module.params["alert_match"], module.params["alert_days"],
                                         time.time())
        return {"changed": False, "entries": select(entries, module.params["since"]), "alerts": alerts,
                "alerts_source": source}

    run_module(argument_spec(), body, "Release ledger")


if __name__ == "__main__":
    main()
