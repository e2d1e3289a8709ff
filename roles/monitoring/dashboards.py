#!/usr/bin/env python3
"""Grafana dashboards of Colors, as code: `make dashboards` writes roles/monitoring/files/dashboards/*.json.

Built with Grafana's foundation SDK (its builders are generated from Grafana's dashboard schema), so each JSON
is a valid dashboard by construction; tests regenerate them (no drift), read them back through the SDK's models
and run every query against the local Prometheus. The monitoring role provisions them as ConfigMaps carrying the
Grafana sidecar label.

- Service overview: RED per route, SLO burn, saturation, the versions serving, release markers.
- Cluster health: nodes, CPU, memory, filesystems, pods not running, control plane.
- Deployment history: replicas desired / available / updated, restarts, versions over time, release markers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DashboardCursorSync, DataSourceRef, GridPos

OUT = Path(__file__).resolve().parent / "files" / "dashboards"
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
APP = 'job="colors"'
NS = 'namespace="colors"'

# Each release the release engine records is pushed as colors_release_timestamp_seconds{version, verdict, strategy}
# (value: when it finished). A new series is a new release: the annotation marks the two minutes after it appears
# on every time series panel, titled with its labels.
RELEASE_MARKERS = (db.AnnotationQuery().name("Releases").datasource(DS).enable(True).icon_color("#8F3BB8")
                   .expr("colors_release_timestamp_seconds unless colors_release_timestamp_seconds offset 2m"))
REF_IDS = "ABCDEFGH"


def query(expr: str, legend: str, ref_id: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).datasource(DS).ref_id(ref_id)


def panel(title: str, unit: str, x: int, y: int, *queries: tuple[str, str], w: int = 12, h: int = 8):
    built = timeseries.Panel().title(title).unit(unit).datasource(DS).grid_pos(GridPos(h=h, w=w, x=x, y=y))
    for ref_id, (expr, legend) in zip(REF_IDS, queries, strict=False):
        built = built.with_target(query(expr, legend, ref_id))
    return built


def single(title: str, unit: str, x: int, y: int, expr: str, legend: str, w: int = 6, h: int = 4):
    return (stat.Panel().title(title).unit(unit).datasource(DS).grid_pos(GridPos(h=h, w=w, x=x, y=y))
            .with_target(query(expr, legend)))


def base(uid: str, title: str, description: str) -> db.Dashboard:
    return (db.Dashboard(title).uid(uid).description(description).tags(["colors"]).refresh("30s")
            .time("now-6h", "now").timezone("utc").tooltip(DashboardCursorSync.CROSSHAIR)
            .with_variable(db.DatasourceVariable("datasource").label("Prometheus").type("prometheus")))


def service_overview() -> db.Dashboard:
    return (base("colors-service", "Colors / Service overview",
                 "RED per route, SLO burn, saturation and the releases of the Colors web dashboard.")
            .annotation(RELEASE_MARKERS)
            .with_panel(single("Availability (30 d, SLO 99.9 %)", "percentunit", 0, 0,
                               f'1 - ((sum(increase(colors_http_requests_total{{{APP},status=~"5.."}}[30d])) '
                               f'or vector(0)) / sum(increase(colors_http_requests_total{{{APP}}}[30d])))',
                               "availability"))
            .with_panel(single("Requests per second", "reqps", 6, 0,
                               f"sum(rate(colors_http_requests_total{{{APP}}}[5m]))", "req/s"))
            .with_panel(single("Error ratio (5 m)", "percentunit", 12, 0, "sum(colors:http_errors:ratio_rate5m)",
                               "5xx share"))
            .with_panel(single("Versions serving", "none", 18, 0, f"count(count by (version) "
                               f"(colors_build_info{{{APP}}}))", "versions"))
            .with_panel(panel("Rate by route", "reqps", 0, 4,
                              (f"sum by (route) (rate(colors_http_requests_total{{{APP}}}[5m]))", "{{route}}")))
            .with_panel(panel("Errors by route", "reqps", 12, 4,
                              # 0 per route, not "no data", while no request failed
                              (f'sum by (route) (rate(colors_http_requests_total{{{APP},status=~"5.."}}[5m])) '
                               f'or sum by (route) (rate(colors_http_requests_total{{{APP}}}[5m])) * 0',
                               "{{route}}")))
            .with_panel(panel("Latency", "s", 0, 12, *[
                (f"histogram_quantile({q}, sum by (le) (rate(colors_http_request_duration_seconds_bucket"
                 f"{{{APP}}}[5m])))", f"p{int(q * 100)}") for q in (0.5, 0.95, 0.99)]))
            .with_panel(panel("Error budget burn rate", "none", 12, 12,
                              ("colors:http_errors:ratio_rate1h / (1 - 0.999)", "availability, 1 h"),
                              ("colors:http_errors:ratio_rate6h / (1 - 0.999)", "availability, 6 h"),
                              ("colors:http_slow:ratio_rate1h / (1 - 0.99)", "latency, 1 h")))
            .with_panel(panel("Saturation: requests in flight", "none", 0, 20,
                              (f"sum by (instance) (colors_http_requests_in_flight{{{APP}}})", "{{instance}}")))
            .with_panel(panel("Saturation: CPU and memory of the pods", "percentunit", 12, 20,
                              (f'sum by (pod) (rate(container_cpu_usage_seconds_total{{{NS},container="colors"}}[5m]))'
                               f' / sum by (pod) (kube_pod_container_resource_limits{{{NS},resource="cpu"}})',
                               "cpu {{pod}}"),
                              (f'sum by (pod) (container_memory_working_set_bytes{{{NS},container="colors"}})'
                               f' / sum by (pod) (kube_pod_container_resource_limits{{{NS},resource="memory"}})',
                               "memory {{pod}}"))))


def cluster_health() -> db.Dashboard:
    return (base("colors-cluster", "Colors / Cluster health",
                 "Nodes, capacity and the control plane of the cluster Colors runs on.")
            .with_panel(single("Nodes not Ready", "none", 0, 0,
                               'sum(kube_node_status_condition{condition="Ready",status="true"} == 0) or vector(0)',
                               "nodes"))
            .with_panel(single("Pods not running", "none", 6, 0,
                               'sum(kube_pod_status_phase{phase!~"Running|Succeeded"}) or vector(0)', "pods"))
            .with_panel(single("API server up", "none", 12, 0, 'min(up{job="apiserver"})', "up"))
            .with_panel(single("Firing alerts", "none", 18, 0, 'count(ALERTS{alertstate="firing"}) or vector(0)',
                               "alerts"))
            .with_panel(panel("CPU busy by node", "percentunit", 0, 4,
                              ('1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))',
                               "{{instance}}")))
            .with_panel(panel("Memory available by node", "percentunit", 12, 4,
                              ("node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes", "{{instance}}")))
            .with_panel(panel("Filesystem free", "percentunit", 0, 12,
                              ('node_filesystem_avail_bytes{fstype!~"tmpfs|overlay|squashfs"} '
                               '/ node_filesystem_size_bytes{fstype!~"tmpfs|overlay|squashfs"}',
                               "{{instance}} {{mountpoint}}")))
            .with_panel(panel("Scrape targets up", "none", 12, 12, ("sum by (job) (up)", "{{job}}"))))


def deployment_history() -> db.Dashboard:
    return (base("colors-deployments", "Colors / Deployment history",
                 "Releases of Colors: replicas through each rollout, restarts and the versions serving.")
            .annotation(RELEASE_MARKERS)
            .with_panel(panel("Replicas", "none", 0, 0,
                              (f"sum by (deployment) (kube_deployment_spec_replicas{{{NS}}})",
                               "desired {{deployment}}"),
                              (f"sum by (deployment) (kube_deployment_status_replicas_available{{{NS}}})",
                               "available {{deployment}}"),
                              (f"sum by (deployment) (kube_deployment_status_replicas_updated{{{NS}}})",
                               "updated {{deployment}}"), w=24))
            .with_panel(panel("Instances per version", "none", 0, 8,
                              (f"count by (version) (colors_build_info{{{APP}}})", "{{version}}")))
            .with_panel(panel("Container restarts", "none", 12, 8,
                              (f"sum by (pod) (increase(kube_pod_container_status_restarts_total{{{NS}}}[10m]))",
                               "{{pod}}")))
            .with_panel(panel("Releases (finish time)", "dateTimeAsIso", 0, 16,
                              ("colors_release_timestamp_seconds * 1000", "{{version}} {{verdict}}"), w=24)))


DASHBOARDS = {"colors-service.json": service_overview, "colors-cluster.json": cluster_health,
              "colors-deployments.json": deployment_history}


def render() -> dict[str, str]:
    return {name: JSONEncoder(sort_keys=True, indent=2).encode(build().build()) + "\n"
            for name, build in DASHBOARDS.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (args.out / name).write_text(text)
    print(json.dumps(sorted(str(args.out / n) for n in DASHBOARDS)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
