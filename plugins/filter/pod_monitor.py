"""The Prometheus scrape configuration the Prometheus Operator generates for a PodMonitor, for a Prometheus that runs
without the operator (the local platform's), so that both label every series the same way."""

from __future__ import annotations

import re
from typing import Any

from ansible.errors import AnsibleFilterError

SUPPORTED_SPEC = {"selector", "namespaceSelector", "podTargetLabels", "jobLabel", "podMetricsEndpoints"}
SUPPORTED_ENDPOINT = {"port", "path", "interval", "scrapeTimeout", "scheme"}


def sanitize(name: str) -> str:
    """A Kubernetes label name as a Prometheus label name, as the operator and Prometheus sanitise it."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def pod_monitor_scrape_config(podmonitor: Any, kubeconfig: str) -> list[dict[str, Any]]:
    if not isinstance(podmonitor, dict) or podmonitor.get("kind") != "PodMonitor":
        raise AnsibleFilterError(f"pod_monitor_scrape_config expects a PodMonitor manifest, got {podmonitor!r:.200}")
    meta, spec = podmonitor.get("metadata") or {}, podmonitor.get("spec") or {}
    unsupported = sorted(set(spec) - SUPPORTED_SPEC)
    if unsupported:
        raise AnsibleFilterError(f"PodMonitor {meta.get('name')}: spec fields {unsupported} are not supported here "
                                 f"(supported: {sorted(SUPPORTED_SPEC)})")
    selector = spec.get("selector") or {}
    if set(selector) - {"matchLabels"}:
        raise AnsibleFilterError(f"PodMonitor {meta.get('name')}: only selector.matchLabels is supported, "
                                 f"got {sorted(selector)}")
    namespaces = (spec.get("namespaceSelector") or {}).get("matchNames") or [meta.get("namespace")]
    configs = []
    for index, endpoint in enumerate(spec.get("podMetricsEndpoints") or []):
        extra = sorted(set(endpoint) - SUPPORTED_ENDPOINT)
        if extra or not endpoint.get("port"):
            raise AnsibleFilterError(f"PodMonitor {meta.get('name')} endpoint {index}: needs a named port and "
                                     f"supports {sorted(SUPPORTED_ENDPOINT)}; got {sorted(endpoint)}")
        relabel: list[dict[str, Any]] = [
            {"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"},
            {"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"], "regex": "(Failed|Succeeded)"},
        ]
        for key, value in sorted((selector.get("matchLabels") or {}).items()):
            relabel.append({"action": "keep",
                            "source_labels": [f"__meta_kubernetes_pod_label_{sanitize(key)}",
                                              f"__meta_kubernetes_pod_labelpresent_{sanitize(key)}"],
                            "regex": f"({value});true"})
        relabel += [
            {"action": "keep", "source_labels": ["__meta_kubernetes_pod_container_port_name"],
             "regex": endpoint["port"]},
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        ]
        for label in spec.get("podTargetLabels") or []:
            relabel.append({"source_labels": [f"__meta_kubernetes_pod_label_{sanitize(label)}"],
                            "target_label": sanitize(label), "regex": "(.+)", "replacement": "${1}"})
        relabel.append({"target_label": "job", "replacement": f"{meta.get('namespace')}/{meta.get('name')}"})
        if spec.get("jobLabel"):
            relabel.append({"source_labels": [f"__meta_kubernetes_pod_label_{sanitize(spec['jobLabel'])}"],
                            "target_label": "job", "regex": "(.+)", "replacement": "${1}"})
        relabel.append({"target_label": "endpoint", "replacement": endpoint["port"]})
        config: dict[str, Any] = {
            "job_name": f"podMonitor/{meta.get('namespace')}/{meta.get('name')}/{index}",
            "honor_labels": False,
            "kubernetes_sd_configs": [{"role": "pod", "kubeconfig_file": kubeconfig,
                                       "namespaces": {"names": list(namespaces)}}],
            "metrics_path": endpoint.get("path", "/metrics"),
            "scheme": endpoint.get("scheme", "http"),
            "relabel_configs": relabel,
        }
        for field, key in (("interval", "scrape_interval"), ("scrapeTimeout", "scrape_timeout")):
            if endpoint.get(field):
                config[key] = endpoint[field]
        configs.append(config)
    if not configs:
        raise AnsibleFilterError(f"PodMonitor {meta.get('name')} has no podMetricsEndpoints")
    return configs


def target_labels(podmonitor: dict) -> list[str]:
    """The labels every target of the PodMonitor carries (besides instance): what one query may select by."""
    spec = podmonitor["spec"]
    return sorted({"job", "namespace", "container", "pod", "endpoint", "instance",
                   *(sanitize(label) for label in spec.get("podTargetLabels") or [])})


class FilterModule:
    def filters(self):
        return {"pod_monitor_scrape_config": pod_monitor_scrape_config}
