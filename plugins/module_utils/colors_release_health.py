"""Health gates of a release, read from what the API server reports (pure functions, no I/O).

A verdict is one of:
  healthy      every replica of the new revision is updated, ready and available
  progressing  not there yet, and nothing says it will not get there
  no-data      a metric gate's query returned no value: inconclusive, never healthy (the engine waits for data up to
               a bound, then fails naming the query and the selector)
  failed       a gate failed; `gate` names it and `evidence` quotes what the cluster reported
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ansible_collections.colors.deploy.plugins.module_utils.colors_release_cluster import image_of

REVISION = "deployment.kubernetes.io/revision"

# Container waiting reasons that no amount of waiting fixes: fail at once instead of at the deadline.
FATAL_WAITING = {
    "CrashLoopBackOff": "pod-crashloop",
    "ImagePullBackOff": "image-pull",
    "ErrImagePull": "image-pull",
    "InvalidImageName": "image-pull",
    "CreateContainerConfigError": "container-config",
    "CreateContainerError": "container-config",
    "RunContainerError": "container-config",
}


@dataclass
class Verdict:
    state: str  # healthy | progressing | failed
    gate: str | None = None
    evidence: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.state != "progressing"

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "gate": self.gate, "evidence": self.evidence, **self.detail}


def _get(obj: dict | None, *path: str, default: Any = None) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return default
        obj = obj.get(key)
    return default if obj is None else obj


def revision_of(obj: dict) -> int:
    try:
        return int(_get(obj, "metadata", "annotations", REVISION, default=0))
    except (TypeError, ValueError):
        return 0


def current_replicaset(deployment: dict, replicasets: list[dict]) -> dict | None:
    """The ReplicaSet of the Deployment's current revision (the one its template produced)."""
    revision = revision_of(deployment)
    owned = [rs for rs in replicasets if any(
        ref.get("kind") == "Deployment" and ref.get("name") == _get(deployment, "metadata", "name")
        for ref in _get(rs, "metadata", "ownerReferences", default=[]))]
    matching = [rs for rs in owned if revision_of(rs) == revision]
    return matching[0] if matching else None


def pods_of(replicaset: dict | None, pods: list[dict]) -> list[dict]:
    if replicaset is None:
        return []
    template_hash = _get(replicaset, "metadata", "labels", "pod-template-hash")
    return [p for p in pods if _get(p, "metadata", "labels", "pod-template-hash") == template_hash
            and not _get(p, "metadata", "deletionTimestamp")]


def _condition(pod: dict, kind: str) -> dict:
    return next((c for c in _get(pod, "status", "conditions", default=[]) if c.get("type") == kind), {})


def _ready(pod: dict) -> bool:
    return _condition(pod, "Ready").get("status") == "True"


def why_not_ready(pod: dict) -> str:
    """One line on a pod that is not ready, from its own status: where it is stuck (unscheduled, its containers
    waiting or not ready), with the reason and message the scheduler or the kubelet gave."""
    name = _get(pod, "metadata", "name")
    phase = _get(pod, "status", "phase", default="Unknown")
    scheduled = _condition(pod, "PodScheduled")
    if scheduled.get("status") != "True":
        said = scheduled.get("message") or scheduled.get("reason") or "not scheduled yet"
        return f"pod {name}: {phase}, not scheduled ({said})"
    node = _get(pod, "spec", "nodeName", default="?")
    states = []
    for cs in _get(pod, "status", "containerStatuses", default=[]):
        state = cs.get("state") or {}
        if "waiting" in state:
            waiting = state["waiting"] or {}
            states.append(f"{cs.get('name')} waiting: {waiting.get('reason', '?')}"
                          + (f" ({waiting['message']})" if waiting.get("message") else ""))
        elif "terminated" in state:
            terminated = state["terminated"] or {}
            states.append(f"{cs.get('name')} terminated: {terminated.get('reason', '?')}, exit code "
                          f"{terminated.get('exitCode')}")
        elif not cs.get("ready"):
            last = _get(cs, "lastState", "terminated", default={}) or {}
            states.append(f"{cs.get('name')} running, not ready"
                          + (f", restarts {cs['restartCount']}" if cs.get("restartCount") else "")
                          + (f" (last ended: {last.get('reason', '?')}, exit code {last.get('exitCode')})"
                             if last else ""))
    ready = _condition(pod, "Ready")
    said = "; ".join(states) or ready.get("message") or ready.get("reason") or "no container status yet"
    return f"pod {name} on {node}: {phase}, {said}"


CHANGED_DURING_RELEASE = "changed-during-release"


def changed_by_another(deployment: dict | None, applied: dict | None) -> Verdict | None:
    """A failed verdict when the Deployment is no longer what this run applied (`applied`: the generation and image
    the API server returned for its own write): another hand changed or deleted it during the release. Else None."""
    if not applied or applied.get("generation") is None:
        return None
    name = applied["name"]
    if deployment is None:
        return Verdict("failed", CHANGED_DURING_RELEASE, [f"deployment {name} was deleted during the release"])
    generation = _get(deployment, "metadata", "generation", default=0)
    if generation <= applied["generation"]:
        return None
    image = image_of(deployment)
    return Verdict("failed", CHANGED_DURING_RELEASE, [
        f"deployment {name} was changed during the release by another hand: generation {generation}, after the "
        f"{applied['generation']} this release applied; its image is now {image} (this release applied "
        f"{applied['image']})"], {"image": image, "generation": generation})


def assess(deployment: dict, replicasets: list[dict], pods: list[dict]) -> Verdict:
    """Judge a rollout from the Deployment, its ReplicaSets and its pods, as the API server reports them."""
    name = _get(deployment, "metadata", "name")
    spec_replicas = _get(deployment, "spec", "replicas", default=1)
    status = deployment.get("status") or {}
    generation = _get(deployment, "metadata", "generation", default=0)
    observed = status.get("observedGeneration", 0)
    if observed < generation:  # the controller has not seen the change yet: revision and pods are stale
        return Verdict("progressing", evidence=[f"deployment {name}: generation {generation} not observed yet"])
    replicaset = current_replicaset(deployment, replicasets)
    detail = {"revision": revision_of(deployment), "replicaset": _get(replicaset, "metadata", "name"),
              "template_hash": _get(replicaset, "metadata", "labels", "pod-template-hash")}

    # Gate: pods of the new revision that can never become ready (fail fast, before any deadline).
    for pod in pods_of(replicaset, pods):
        for cs in _get(pod, "status", "containerStatuses", default=[]) + _get(pod, "status", "initContainerStatuses",
                                                                              default=[]):
            waiting = _get(cs, "state", "waiting", default={})
            gate = FATAL_WAITING.get(waiting.get("reason", ""))
            if gate:
                message = waiting.get("message") or ""
                return Verdict("failed", gate, [
                    f"pod {_get(pod, 'metadata', 'name')} container {cs.get('name')}: {waiting['reason']}"
                    + (f" ({message})" if message else "")
                    + (f", restarts {cs.get('restartCount')}" if cs.get("restartCount") else "")], detail)

    # Gate: the controller's own progress verdict (covers readiness that never turns true), with what each pod of the
    # new revision that is not ready reports about itself.
    for cond in status.get("conditions", []):
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            ready = status.get("readyReplicas", 0)
            return Verdict("failed", "rollout-progress", [
                f"deployment {name}: ProgressDeadlineExceeded ({cond.get('message', '')}); "
                f"{ready}/{spec_replicas} replicas ready"]
                + [why_not_ready(pod) for pod in pods_of(replicaset, pods) if not _ready(pod)], detail)

    complete = (
        status.get("updatedReplicas", 0) == spec_replicas
        and status.get("replicas", 0) == spec_replicas
        and status.get("readyReplicas", 0) == spec_replicas
        and status.get("availableReplicas", 0) == spec_replicas
        and not status.get("unavailableReplicas")
    )
    if complete:
        return Verdict("healthy", detail=detail)
    return Verdict("progressing", evidence=[
        f"deployment {name}: {status.get('updatedReplicas', 0)} updated, {status.get('readyReplicas', 0)} ready, "
        f"{status.get('availableReplicas', 0)} available of {spec_replicas}"]
        + [why_not_ready(pod) for pod in pods_of(replicaset, pods) if not _ready(pod)], detail=detail)


def prometheus_verdict(name: str, query: str, result: dict, maximum: float) -> Verdict:
    """Judge one Prometheus instant query result (the JSON of /api/v1/query) against its threshold.

    A query that returns no series, or only NaN (0/0: nothing counted), has no verdict: "no-data". A selector that
    matches nothing - a missing PodMonitor, a renamed label, a broken scrape - must never pass a release."""
    if result.get("status") != "success":
        return Verdict("failed", f"prometheus:{name}", [f"query {query!r} failed: {result.get('error', result)}"])
    values = []
    for sample in _get(result, "data", "result", default=[]):
        raw = sample.get("value", [None, "NaN"])[1]
        try:
            values.append(float(raw))
        except (TypeError, ValueError):
            continue
    worst = max((v for v in values if v == v), default=None)  # NaN != NaN
    if worst is None:
        return Verdict("no-data", f"prometheus:{name}", [f"{query} returned no data"], {"value": None})
    if worst > maximum:
        return Verdict("failed", f"prometheus:{name}", [f"{query} = {worst:g} > {maximum:g}"], {"value": worst})
    return Verdict("healthy", detail={"value": worst})
