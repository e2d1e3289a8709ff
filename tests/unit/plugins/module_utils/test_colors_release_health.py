"""Unit tests of the release health gates (plugins/module_utils/colors_release_health.py)."""

from __future__ import annotations

import pytest
from helpers import load_plugin

health = load_plugin("plugins/module_utils/colors_release_health.py")


def deployment(revision=2, generation=2, observed=2, replicas=2, updated=2, ready=2, available=2, total=2,
               conditions=()):
    return {"metadata": {"name": "colors", "generation": generation,
                         "annotations": {health.REVISION: str(revision)}},
            "spec": {"replicas": replicas},
            "status": {"observedGeneration": observed, "replicas": total, "updatedReplicas": updated,
                       "readyReplicas": ready, "availableReplicas": available, "conditions": list(conditions)}}


def replicaset(revision, template_hash):
    return {"metadata": {"name": f"colors-{template_hash}", "labels": {"pod-template-hash": template_hash},
                         "annotations": {health.REVISION: str(revision)},
                         "ownerReferences": [{"kind": "Deployment", "name": "colors"}]}}


def pod(template_hash, waiting=None, name="p1", restarts=0):
    state = {"waiting": {"reason": waiting, "message": f"{waiting} detail"}} if waiting else {"running": {}}
    return {"metadata": {"name": name, "labels": {"pod-template-hash": template_hash}},
            "status": {"containerStatuses": [{"name": "colors", "state": state, "restartCount": restarts}]}}


RS = [replicaset(1, "old"), replicaset(2, "new")]


def test_a_complete_rollout_is_healthy():
    verdict = health.assess(deployment(), RS, [pod("new")])
    assert verdict.state == "healthy"
    assert verdict.detail["revision"] == 2 and verdict.detail["replicaset"] == "colors-new"


def test_a_rollout_in_progress_is_progressing():
    verdict = health.assess(deployment(updated=1, ready=1, total=3), RS, [pod("new")])
    assert verdict.state == "progressing" and "1 updated, 1 ready" in verdict.evidence[0]


@pytest.mark.parametrize(("reason", "gate"), [
    ("CrashLoopBackOff", "pod-crashloop"), ("ImagePullBackOff", "image-pull"), ("ErrImagePull", "image-pull"),
    ("CreateContainerConfigError", "container-config"),
])
def test_a_fatal_waiting_reason_of_the_new_revision_fails_at_once(reason, gate):
    verdict = health.assess(deployment(updated=1, ready=0), RS, [pod("new", reason, name="colors-new-x", restarts=3)])
    assert verdict.state == "failed" and verdict.gate == gate
    assert verdict.evidence == [f"pod colors-new-x container colors: {reason} ({reason} detail), restarts 3"]


def test_pods_of_an_old_revision_do_not_fail_the_new_one():
    verdict = health.assess(deployment(), RS, [pod("old", "CrashLoopBackOff"), pod("new")])
    assert verdict.state == "healthy"


def test_nothing_is_judged_before_the_controller_observed_the_change():
    stale = deployment(generation=3, observed=2)
    verdict = health.assess(stale, RS, [pod("new", "CrashLoopBackOff")])
    assert verdict.state == "progressing" and "not observed yet" in verdict.evidence[0]


def test_the_controllers_progress_deadline_fails_readiness_that_never_comes():
    cond = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
            "message": 'ReplicaSet "colors-new" has timed out progressing.'}
    verdict = health.assess(deployment(ready=1, updated=1, conditions=[cond]), RS, [pod("new")])
    assert verdict.state == "failed" and verdict.gate == "rollout-progress"
    assert "ProgressDeadlineExceeded" in verdict.evidence[0] and "1/2 replicas ready" in verdict.evidence[0]


def test_a_progress_deadline_names_what_each_unready_pod_of_the_new_revision_reports():
    cond = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "timed out"}
    unscheduled = {"metadata": {"name": "colors-new-a", "labels": {"pod-template-hash": "new"}},
                   "status": {"phase": "Pending", "conditions": [
                       {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                        "message": "0/3 nodes are available: 1 Insufficient cpu."}]}}
    unready = {"metadata": {"name": "colors-new-b", "labels": {"pod-template-hash": "new"}},
               "spec": {"nodeName": "worker"},
               "status": {"phase": "Running", "conditions": [
                   {"type": "PodScheduled", "status": "True"},
                   {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
                   "containerStatuses": [{"name": "colors", "ready": False, "restartCount": 0,
                                          "state": {"running": {}}}]}}
    ready = {"metadata": {"name": "colors-new-c", "labels": {"pod-template-hash": "new"}},
             "spec": {"nodeName": "worker"},
             "status": {"phase": "Running", "conditions": [{"type": "PodScheduled", "status": "True"},
                                                           {"type": "Ready", "status": "True"}]}}
    restarted = {"metadata": {"name": "colors-new-d", "labels": {"pod-template-hash": "new"}},
                 "spec": {"nodeName": "worker"},
                 "status": {"phase": "Running", "conditions": [{"type": "PodScheduled", "status": "True"}],
                            "containerStatuses": [{"name": "colors", "ready": False, "restartCount": 3,
                                                   "state": {"running": {}},
                                                   "lastState": {"terminated": {"reason": "Error", "exitCode": 137}}}]}}
    verdict = health.assess(deployment(ready=1, updated=4, total=4, conditions=[cond]), RS,
                            [unscheduled, unready, ready, restarted, pod("old")])
    assert verdict.evidence[1:] == [
        "pod colors-new-a: Pending, not scheduled (0/3 nodes are available: 1 Insufficient cpu.)",
        "pod colors-new-b on worker: Running, colors running, not ready",
        "pod colors-new-d on worker: Running, colors running, not ready, restarts 3 (last ended: Error, exit code 137)"]


def _prom(*values):
    return {"status": "success", "data": {"resultType": "vector",
                                          "result": [{"metric": {}, "value": [0, v]} for v in values]}}


def test_a_metric_above_its_threshold_fails_its_gate_quoting_query_and_value():
    verdict = health.prometheus_verdict("error-ratio", "errors / total", _prom("0.01", "0.31"), 0.02)
    assert verdict.state == "failed" and verdict.gate == "prometheus:error-ratio"
    assert verdict.evidence == ["errors / total = 0.31 > 0.02"]


def test_a_metric_within_its_threshold_passes():
    assert health.prometheus_verdict("error-ratio", "q", _prom("0.01"), 0.02).state == "healthy"


@pytest.mark.parametrize("result", [_prom(), _prom("NaN"), _prom("NaN", "NaN")], ids=["no-series", "nan", "all-nan"])
def test_a_query_without_data_is_no_verdict_never_healthy(result):
    verdict = health.prometheus_verdict("error-ratio", "errors / total", result, 0.02)
    assert verdict.state == "no-data" and verdict.gate == "prometheus:error-ratio"
    assert verdict.evidence == ["errors / total returned no data"]


def test_a_failed_query_fails_the_gate():
    verdict = health.prometheus_verdict("p95", "bad(", {"status": "error", "error": "parse error"}, 1)
    assert verdict.state == "failed" and "parse error" in verdict.evidence[0]
