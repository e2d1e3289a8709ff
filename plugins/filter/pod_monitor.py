"""The Prometheus scrape configuration the Prometheus Operator generates for a PodMonitor, for a Prometheus that runs
without the operator (the local platform's), so that both label every series the same way."""

from __future__ import annotations

import re
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: pod_monitor_scrape_config
short_description: Turn a PodMonitor into the scrape configuration the Prometheus Operator would generate for it
description:
  - Takes a C(monitoring.coreos.com/v1) PodMonitor and returns one Prometheus C(scrape_configs) entry per
    C(podMetricsEndpoints) item, with the relabelling the Prometheus Operator generates (job
    C(podMonitor/<namespace>/<name>/<index>); pods in phase Failed or Succeeded dropped; the selector's labels kept;
    the named container port kept; C(namespace), C(container), C(pod) from the pod; each C(podTargetLabels) label
    copied under its sanitised name; C(job) from C(jobLabel), else C(<namespace>/<name>); C(endpoint) the port name).
  - So a Prometheus without the operator (the local platform's) gives every series the same target labels as
    kube-prometheus-stack does in a cluster, and one query serves both.
  - Supports the fields the project uses - C(selector.matchLabels), C(namespaceSelector.matchNames),
    C(podTargetLabels), C(jobLabel), and per endpoint C(port), C(path), C(interval), C(scrapeTimeout), C(scheme) -
    and refuses any other, naming it.
positional: _input
options:
  _input:
    description: The PodMonitor manifest.
    type: dict
    required: true
  kubeconfig:
    description: Kubeconfig file Prometheus discovers the pods with (its C(kubernetes_sd_configs) entry).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Scrape the pods as kube-prometheus-stack would
  ansible.builtin.set_fact:
    _scrape_configs: "{{ lookup('ansible.builtin.template', 'podmonitor.yml.j2') | from_yaml
                         | pod_monitor_scrape_config('/etc/prometheus/kubeconfig') }}"
"""

RETURN = r"""
_value:
  description: Prometheus scrape configurations, one per endpoint of the PodMonitor.
  type: list
  elements: dict
"""

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
