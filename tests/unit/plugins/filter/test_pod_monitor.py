"""Unit tests of the PodMonitor → scrape configuration filter (plugins/filter/pod_monitor.py), and of the one contract
it serves: the label a release gate selects the new pods by is a label every scraped series carries."""

from __future__ import annotations

import importlib.util

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from helpers import REPO, load_plugin, role_pod_monitor

spec = importlib.util.spec_from_file_location("pod_monitor_filters", REPO / "plugins" / "filter" / "pod_monitor.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
scrape_config = module.FilterModule().filters()["pod_monitor_scrape_config"]


def test_a_pod_monitor_becomes_the_scrape_job_the_prometheus_operator_generates():
    """The operator's relabelling for a PodMonitor, in its order (prometheus-operator's TestGeneratePodMonitorConfig and
    TestPodTargetLabels golden configurations): job kept aside, finished pods dropped, selector kept, port kept,
    namespace/container/pod, podTargetLabels, job, endpoint."""
    podmonitor = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
                  "metadata": {"name": "testpodmonitor1", "namespace": "default"},
                  "spec": {"selector": {"matchLabels": {"group": "group1"}}, "podTargetLabels": ["example", "env"],
                           "podMetricsEndpoints": [{"port": "web", "interval": "30s"}]}}
    [job] = scrape_config(podmonitor, "/k/config")
    assert job["job_name"] == "podMonitor/default/testpodmonitor1/0"
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "kubeconfig_file": "/k/config",
                                             "namespaces": {"names": ["default"]}}]
    assert job["scrape_interval"] == "30s" and job["metrics_path"] == "/metrics" and job["honor_labels"] is False
    assert job["relabel_configs"] == [
        {"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"},
        {"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"], "regex": "(Failed|Succeeded)"},
        {"action": "keep", "source_labels": ["__meta_kubernetes_pod_label_group",
                                             "__meta_kubernetes_pod_labelpresent_group"], "regex": "(group1);true"},
        {"action": "keep", "source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": "web"},
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_pod_label_example"], "target_label": "example", "regex": "(.+)",
         "replacement": "${1}"},
        {"source_labels": ["__meta_kubernetes_pod_label_env"], "target_label": "env", "regex": "(.+)",
         "replacement": "${1}"},
        {"target_label": "job", "replacement": "default/testpodmonitor1"},
        {"target_label": "endpoint", "replacement": "web"},
    ]


def test_the_role_pod_monitor_labels_series_with_the_template_hash_the_release_gates_select_by():
    watch = load_plugin("plugins/module_utils/colors_release_watch.py")
    podmonitor = role_pod_monitor()
    labels = module.target_labels(podmonitor)
    assert watch.TEMPLATE_HASH_LABEL in labels
    assert {"job", "namespace", "pod", "container", "endpoint", "instance"} <= set(labels)
    [job] = scrape_config(podmonitor, "/k")
    # job comes from the pods' app.kubernetes.io/name: "colors", what the alert rules and dashboards select.
    assert job["relabel_configs"][-2] == {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
                                          "target_label": "job", "regex": "(.+)", "replacement": "${1}"}
    assert job["kubernetes_sd_configs"][0]["namespaces"]["names"] == ["colors"]


def test_the_release_pods_carry_every_label_the_pod_monitor_copies():
    """What podTargetLabels names exists on the pods the release engine creates (a label missing there would leave
    the gate without data)."""
    values = yaml.safe_load((REPO / "roles" / "app_release" / "defaults" / "main.yml").read_text())
    template = (REPO / "roles" / "app_release" / "templates" / "deployment.yml.j2").read_text()
    for label in role_pod_monitor()["spec"]["podTargetLabels"]:
        if label == "pod-template-hash":
            continue  # set by the Deployment controller on every pod
        if label in ("colors.io/color", "colors.io/track"):
            engine = load_plugin("plugins/module_utils/colors_release_engine.py")
            assert label in (engine.COLOR_LABEL, engine.TRACK_LABEL)  # set by the blue-green and canary strategies
            continue
        assert f"{label}:" in template, f"the pods of app_release carry no {label} label"
    assert values["app_release_name"] == role_pod_monitor()["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]


@pytest.mark.parametrize(("podmonitor", "message"), [
    ({"kind": "ServiceMonitor"}, "expects a PodMonitor"),
    ({"kind": "PodMonitor", "metadata": {"name": "x"}, "spec": {"sampleLimit": 5}}, "spec fields ['sampleLimit']"),
    ({"kind": "PodMonitor", "metadata": {"name": "x"},
      "spec": {"selector": {"matchExpressions": []}, "podMetricsEndpoints": [{"port": "http"}]}},
     "only selector.matchLabels"),
    ({"kind": "PodMonitor", "metadata": {"name": "x"}, "spec": {"podMetricsEndpoints": [{"targetPort": 8080}]}},
     "needs a named port"),
    ({"kind": "PodMonitor", "metadata": {"name": "x"}, "spec": {}}, "has no podMetricsEndpoints"),
])
def test_what_it_cannot_express_is_refused_by_name(podmonitor, message):
    with pytest.raises(AnsibleFilterError, match=message.replace("[", r"\[").replace("]", r"\]")):
        scrape_config(podmonitor, "/k")
