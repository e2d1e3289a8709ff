"""Filters of the release engine: canary steps, durations, dashboard URL, deploy freezes, the migration Job (docs:
<filter name>.yml beside this file)."""

from __future__ import annotations

import copy
import datetime
import math
import re
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.colors.deploy.plugins.module_utils.colors_release_analysis import UNITS

# A release setting's duration: ms, s, m and h (the engine's table of Prometheus' units has d, w and y besides).
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def canary_steps(percents: Any, replicas: Any) -> list[dict[str, int]]:
    try:
        total = int(replicas)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"canary_steps: replicas {replicas!r} is not a whole number") from None
    if total < 1:
        raise AnsibleFilterError(f"canary_steps: replicas {replicas!r} must be at least 1")
    if not isinstance(percents, list) or not percents:
        raise AnsibleFilterError(f"canary_steps: {percents!r} is not a non-empty list of percentages")
    steps, previous = [], 0
    for raw in percents:
        try:
            percent = float(raw)
        except (TypeError, ValueError):
            raise AnsibleFilterError(f"canary_steps: step {raw!r} is not a number (percent of replicas)") from None
        if not 0 < percent <= 100 or percent <= previous:
            raise AnsibleFilterError(
                f"canary_steps: step {raw!r} of {percents!r} must be above the previous step and at most 100")
        previous = percent
        canary = total if percent == 100 else min(total, max(1, math.ceil(total * percent / 100)))
        steps.append({"percent": int(percent) if percent.is_integer() else percent,
                      "canary": canary, "stable": total - canary})
    if previous != 100:
        steps.append({"percent": 100, "canary": total, "stable": 0})
    return steps


def duration_seconds(value: Any) -> float | int:
    if isinstance(value, bool):
        raise AnsibleFilterError(f"duration_seconds: {value!r} is not a duration")
    if isinstance(value, int | float):
        if value < 0:
            raise AnsibleFilterError(f"duration_seconds: {value!r} is negative")
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    parts = _DURATION.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise AnsibleFilterError(
            f"duration_seconds: {value!r} is not a duration; expected seconds or a combination such as "
            "90s, 1m30s, 2h, 500ms")
    total = sum(float(n) * UNITS[u] for n, u in parts)
    return int(total) if float(total).is_integer() else total


def _ready(pod: dict) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def dashboard_url(service: Any, pods: Any = (), public_url: Any = "") -> dict[str, str]:
    """Where the app answers: the public URL when one is configured, else a NodePort on the host address of a ready
    pod a container runtime runs (kwok's simulated pods have no container id), else only the in-cluster name (with
    the reason no URL reaches it from outside). No Node is read: the deployer may not read nodes."""
    if not isinstance(service, dict) or not service.get("metadata"):
        raise AnsibleFilterError(f"dashboard_url: expected a Service object, got {str(service)[:80]!r}")
    meta, spec = service["metadata"], service.get("spec") or {}
    port = next(iter(spec.get("ports") or []), {})
    in_cluster = f"http://{meta['name']}.{meta.get('namespace', 'default')}.svc:{port.get('port', 80)}/"
    if public_url:
        return {"url": str(public_url), "how": "public URL of the environment"}
    if spec.get("type") == "NodePort" and port.get("nodePort"):
        for pod in pods or ():
            status = pod.get("status") or {}
            runs = any(c.get("containerID") for c in status.get("containerStatuses") or [])
            if _ready(pod) and runs and status.get("hostIP"):
                node = (pod.get("spec") or {}).get("nodeName")
                return {"url": f"http://{status['hostIP']}:{port['nodePort']}/",
                        "how": f"NodePort {port['nodePort']} of node {node}, which runs a ready pod"}
        return {"url": "", "how": f"no ready pod runs in a container runtime (simulated nodes only?); "
                                  f"inside the cluster: {in_cluster}"}
    return {"url": "", "how": f"a {spec.get('type', 'ClusterIP')} Service, reached inside the cluster at {in_cluster}"}


def _instant(value: Any, what: str) -> datetime.datetime:
    try:
        moment = datetime.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        raise AnsibleFilterError(f"release_freeze: {what} {value!r} is not a date and time such as "
                                 f"2026-12-24T00:00:00Z (ISO 8601, UTC)") from None
    if moment.tzinfo is None:
        raise AnsibleFilterError(f"release_freeze: {what} {value!r} has no time zone: end it with Z (UTC)")
    return moment


def release_freeze(declared: Any, windows: Any = (), now: Any = None) -> dict[str, str] | None:
    """The freeze that stops a release now, or None: the one declared in the cluster (the freeze ConfigMap's data:
    reason, by, since, until - until empty: until lifted) or the first inventory change window now open."""
    at = _instant(now, "now") if now else datetime.datetime.now(datetime.UTC)
    if declared:
        if not isinstance(declared, dict) or not str(declared.get("reason") or "").strip():
            raise AnsibleFilterError(f"release_freeze: the declared freeze {declared!r} has no reason")
        until = str(declared.get("until") or "").strip()
        if not until or _instant(until, "the freeze's until") > at:
            return {"source": "declared", "reason": str(declared["reason"]), "by": str(declared.get("by") or "?"),
                    "since": str(declared.get("since") or "?"), "until": until}
    if not isinstance(windows, (list, tuple)):
        raise AnsibleFilterError(f"release_freeze: windows {windows!r} is not a list of {{start, end, reason}}")
    for window in windows:
        missing = {"start", "end", "reason"} - set(window if isinstance(window, dict) else ())
        if missing:
            raise AnsibleFilterError(f"release_freeze: change window {window!r} lacks {', '.join(sorted(missing))}")
        start, end = _instant(window["start"], "window start"), _instant(window["end"], "window end")
        if end <= start:
            raise AnsibleFilterError(f"release_freeze: change window {window!r} ends before it starts")
        if start <= at < end:
            return {"source": "window", "reason": str(window["reason"]), "by": "the inventory",
                    "since": str(window["start"]), "until": str(window["end"])}
    return None


# What a pod of the Deployment has that a one-shot command must not: it serves nothing and is never probed.
_SERVING_ONLY = ("ports", "readinessProbe", "livenessProbe", "startupProbe", "lifecycle")


def migration_job(deployment: Any, name: Any, backoff_limit: Any = 2, deadline_seconds: Any = 300,
                  ttl_seconds: Any = 604800, generate: Any = False) -> dict[str, Any]:
    """The Job that runs `colors-app migrate` with the release's pod as the Deployment defines it - image, environment,
    secrets, security context, placement - but labelled as a migration: no Service, PodMonitor or release lookup
    selects it, and it neither serves nor restarts. generate: `name` is the prefix of a name the API server
    completes (generateName), one Job per attempt."""
    try:
        template = copy.deepcopy(deployment["spec"]["template"])
        container = template["spec"]["containers"][0]
        labels = dict(deployment["metadata"].get("labels") or {})
    except (KeyError, IndexError, TypeError) as exc:
        raise AnsibleFilterError(f"migration_job needs a Deployment with a pod template and a container, got "
                                 f"{str(deployment)[:200]!r} ({type(exc).__name__}: {exc})") from exc
    # The job-name label of its pods holds at most 63 characters; generateName adds 5.
    job_name = re.sub(r"[^a-z0-9.-]+", "-", str(name).lower())[:57 if generate else 63].strip("-.")
    if not job_name:
        raise AnsibleFilterError(f"migration_job: {name!r} gives no valid Job name")
    identity = {"generateName": f"{job_name}-"} if generate else {"name": job_name}
    for key in _SERVING_ONLY:
        container.pop(key, None)
    container["args"] = ["migrate"]
    # The kubelet keeps the end of the log as the container's termination message: the release reads why a
    # migration failed from the pod's status, without a grant to read logs.
    container["terminationMessagePolicy"] = "FallbackToLogsOnError"
    release = {k: v for k, v in labels.items() if k in ("app.kubernetes.io/part-of", "app.kubernetes.io/version")}
    pod_labels = {**release, "app.kubernetes.io/name": f"{labels.get('app.kubernetes.io/name', 'colors')}-migrate",
                  "app.kubernetes.io/component": "migration"}
    template["metadata"] = {"labels": pod_labels, "annotations": template.get("metadata", {}).get("annotations", {})}
    template["spec"]["restartPolicy"] = "Never"
    template["spec"].pop("terminationGracePeriodSeconds", None)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {**identity, "namespace": deployment["metadata"].get("namespace"), "labels": pod_labels},
        "spec": {"backoffLimit": int(backoff_limit), "activeDeadlineSeconds": int(deadline_seconds),
                 "ttlSecondsAfterFinished": int(ttl_seconds), "template": template},
    }


class FilterModule:
    def filters(self):
        return {
            "canary_steps": canary_steps,
            "duration_seconds": duration_seconds,
            "dashboard_url": dashboard_url,
            "release_freeze": release_freeze,
            "migration_job": migration_job,
        }
