"""The release engine: roll out, watch the health gates, fail fast, roll back, record in the ledger.

The engine talks to the cluster through `ClusterApi` (a thin layer over kubernetes.core's dynamic client)
so that its decisions can be unit-tested with an in-memory double.
"""

from __future__ import annotations

import copy
import datetime
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from ansible_collections.colors.deploy.plugins.module_utils.colors_k8s import OperatorError
from ansible_collections.colors.deploy.plugins.module_utils.colors_release_health import (
    Verdict,
    assess,
    prometheus_verdict,
    revision_of,
)

LEDGER_LABEL = "colors.io/release-ledger"
FIELD_MANAGER = "colors-release"


class ReleaseFailed(OperatorError):
    """A release or rollback that did not end healthy; the message names the gate, evidence and outcome."""


def utcnow() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ledger_entry(actor: str, image: str | None, strategy: str, previous_image: str | None,
                 version: str | None = None, **extra: Any) -> dict[str, Any]:
    """A new ledger entry, started now; `version` defaults to the image tag."""
    return {"id": datetime.datetime.now(datetime.UTC).strftime("%Y%m%d%H%M%S%f"), "actor": actor,
            "version": version if version is not None else (image or "").rsplit(":", 1)[-1], "image": image,
            "strategy": strategy, "started": utcnow(), "previous_image": previous_image, **extra}


class ClusterApi:
    """The calls the engine makes, on kubernetes.core's DynamicClient."""

    def __init__(self, dynamic_client, dry_run: bool = False):
        self.client = dynamic_client
        self.dry_run = dry_run
        self._deployments = dynamic_client.resources.get(api_version="apps/v1", kind="Deployment")
        self._replicasets = dynamic_client.resources.get(api_version="apps/v1", kind="ReplicaSet")
        self._pods = dynamic_client.resources.get(api_version="v1", kind="Pod")
        self._configmaps = dynamic_client.resources.get(api_version="v1", kind="ConfigMap")
        self._services = dynamic_client.resources.get(api_version="v1", kind="Service")
        self._endpointslices = dynamic_client.resources.get(api_version="discovery.k8s.io/v1", kind="EndpointSlice")

    @staticmethod
    def _dict(obj) -> dict | None:
        return obj.to_dict() if obj is not None else None

    def get_deployment(self, namespace: str, name: str) -> dict | None:
        from kubernetes.dynamic.exceptions import NotFoundError

        try:
            return self._dict(self._deployments.get(name=name, namespace=namespace))
        except NotFoundError:
            return None

    def apply(self, kind: str, body: dict) -> dict:
        resource = {"Deployment": self._deployments, "Service": self._services}[kind]
        params = {"dry_run": "All"} if self.dry_run else {}
        return self._dict(resource.server_side_apply(
            body=body, name=body["metadata"]["name"], namespace=body["metadata"]["namespace"],
            field_manager=FIELD_MANAGER, force_conflicts=True, **params))

    def get_service(self, namespace: str, name: str) -> dict | None:
        from kubernetes.dynamic.exceptions import NotFoundError

        try:
            return self._dict(self._services.get(name=name, namespace=namespace))
        except NotFoundError:
            return None

    def endpoint_pods(self, namespace: str, service: str) -> list[str]:
        """The pods the Service's EndpointSlices list (ready or terminating): where its traffic can go."""
        slices = self._dict(self._endpointslices.get(namespace=namespace,
                                                     label_selector=f"kubernetes.io/service-name={service}"))
        return sorted(ep["targetRef"]["name"] for sl in slices["items"] for ep in sl.get("endpoints") or []
                      if (ep.get("targetRef") or {}).get("kind") == "Pod")

    def scale(self, namespace: str, name: str, replicas: int) -> None:
        params = {"dry_run": "All"} if self.dry_run else {}
        self._deployments.patch(body={"spec": {"replicas": replicas}}, name=name, namespace=namespace,
                                content_type="application/merge-patch+json", **params)

    def apply_dry_run(self, body: dict) -> dict:
        return self._dict(self._deployments.server_side_apply(
            body=body, name=body["metadata"]["name"], namespace=body["metadata"]["namespace"],
            field_manager=FIELD_MANAGER, force_conflicts=True, dry_run="All"))

    def replace_template(self, namespace: str, name: str, template: dict) -> dict:
        patch = {"spec": {"template": template}}
        params = {"dry_run": "All"} if self.dry_run else {}
        return self._dict(self._deployments.patch(body=patch, name=name, namespace=namespace,
                                                  content_type="application/merge-patch+json", **params))

    def replicasets(self, namespace: str, selector: str) -> list[dict]:
        return self._dict(self._replicasets.get(namespace=namespace, label_selector=selector))["items"]

    def pods(self, namespace: str, selector: str) -> list[dict]:
        return self._dict(self._pods.get(namespace=namespace, label_selector=selector))["items"]

    def ledger(self, namespace: str, release: str) -> list[dict]:
        selector = f"{LEDGER_LABEL}={release}"
        items = self._dict(self._configmaps.get(namespace=namespace, label_selector=selector))["items"]
        return [json.loads(cm["data"]["entry"]) for cm in items]

    def record(self, namespace: str, release: str, entry: dict) -> None:
        if self.dry_run:
            return
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": f"{release}-release-{entry['id']}", "namespace": namespace,
                             "labels": {LEDGER_LABEL: release, "app.kubernetes.io/part-of": "colors"}},
                "data": {"entry": json.dumps(entry, sort_keys=True)}}
        self._configmaps.server_side_apply(body=body, name=body["metadata"]["name"], namespace=namespace,
                                           field_manager=FIELD_MANAGER, force_conflicts=True)


def _require_http(url: str) -> None:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"{url!r} is not an http:// or https:// URL")


def http_smoke(url: str, expect_status: int, timeout: float = 5.0, retry_seconds: float = 10.0,
               clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> Verdict:
    """GET the URL once and judge its status. A connection that fails (refused, reset, timed out) is asked again for
    up to `retry_seconds`: a node's proxy can lag a second behind the endpoints; an answer is final."""
    start = clock()
    while True:
        try:
            _require_http(url)
            with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 # nosec B310 - http(s) only, checked above
                status = resp.status
            break
        except urllib.error.HTTPError as exc:
            status = exc.code
            break
        except ValueError as exc:
            return Verdict("failed", "http-smoke", [f"GET {url}: {exc}"])
        except (urllib.error.URLError, OSError) as exc:
            if clock() - start >= retry_seconds:
                return Verdict("failed", "http-smoke", [f"GET {url}: {exc}"])
            sleep(0.5)
    if status != expect_status:
        return Verdict("failed", "http-smoke", [f"GET {url} answered {status}, expected {expect_status}"])
    return Verdict("healthy")


def prometheus_query(url: str, query: str, timeout: float = 10.0) -> dict:
    full = f"{url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    try:
        _require_http(full)
        with urllib.request.urlopen(full, timeout=timeout) as resp:  # noqa: S310 # nosec B310 - http(s) only, checked above
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read() or b"{}") or {"status": "error", "error": f"HTTP {exc.code}"}
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return {"status": "error", "error": f"Prometheus at {url} unreachable: {exc}"}


# Where a metric gate's query says `$pods`, the engine puts the label matchers of the pods it judges: their namespace
# and their ReplicaSet's pod-template-hash, as the PodMonitor of the monitoring role labels every scraped series
# (podTargetLabels: pod-template-hash -> pod_template_hash). So rolling, canary and blue-green releases are each
# judged by the new pods alone, never by the old ones beside them.
POD_SELECTOR = "$pods"
TEMPLATE_HASH_LABEL = "pod_template_hash"


def pod_selector(namespace: str, template_hash: str | None) -> str:
    return f'namespace="{namespace}",{TEMPLATE_HASH_LABEL}="{template_hash or ""}"'


def metric_gates(url: str, queries: list[dict], selector: str, no_data_timeout: float,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> Verdict:
    """Every query once with data and within its maximum: healthy; the first above its maximum: failed. A query with
    no data is inconclusive and asked again (new pods need a scrape or two) until `no_data_timeout` seconds have
    passed; then the gate fails, naming the query, the selector and how many of the pods Prometheus scrapes."""
    start = clock()
    pending = [{**q, "query": str(q["query"]).replace(POD_SELECTOR, selector)} for q in queries]
    values: dict[str, float] = {}
    pause = 0.5
    while True:
        waiting = []
        for check in pending:
            verdict = prometheus_verdict(check["name"], check["query"], prometheus_query(url, check["query"]),
                                         float(check["max"]))
            if verdict.state == "failed":
                return verdict
            if verdict.state == "no-data":
                waiting.append(check)
            else:
                values[check["name"]] = verdict.detail["value"]
        if not waiting:
            return Verdict("healthy", detail={"metrics": values})
        waited = clock() - start
        if waited >= no_data_timeout:
            check = waiting[0]
            up = prometheus_query(url, f"count(up{{{selector}}} == 1)")
            scraped = _get_scalar(up)
            return Verdict("failed", f"prometheus:{check['name']}", [
                f"{check['query']} returned no data for {waited:.0f}s (no series selected; a gate without data never "
                f"passes); Prometheus scrapes {scraped} target(s) matching {{{selector}}}"])
        sleep(min(pause, max(no_data_timeout - waited, 0.05)))
        pause = min(pause * 2, 5.0)
        pending = waiting


def _get_scalar(result: dict) -> str:
    if result.get("status") != "success":
        return "?"
    samples = (result.get("data") or {}).get("result") or []
    return samples[0]["value"][1] if samples else "0"


class RollingRelease:
    """Rolling update with health gates, fail-fast verdicts and automatic rollback."""

    def __init__(self, api: ClusterApi, params: dict, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.api = api
        self.p = params
        self.clock = clock
        self.sleep = sleep
        self.namespace = params["namespace"]
        self.name = params["deployment"]["metadata"]["name"]
        labels = params["deployment"]["spec"]["selector"]["matchLabels"]
        self.selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))

    # --- reading ------------------------------------------------------------------------------

    def _snapshot(self) -> tuple[dict, list[dict], list[dict]]:
        deployment = self.api.get_deployment(self.namespace, self.name)
        return deployment, self.api.replicasets(self.namespace, self.selector), self.api.pods(self.namespace,
                                                                                                  self.selector)

    def wait(self, deadline: float) -> Verdict:
        """Poll the gates until healthy or failed; time out only past the controller's own deadline."""
        start = self.clock()
        pause = 0.02  # look again quickly first (a rollback to running pods settles in milliseconds), then back off
        while True:
            verdict = assess(*self._snapshot())
            if verdict.done:
                verdict.detail["seconds"] = round(self.clock() - start, 2)
                return verdict
            if self.clock() - start > deadline:
                verdict.state, verdict.gate = "failed", "rollout-timeout"
                verdict.evidence.append(f"no verdict from the controller within {deadline:.0f}s")
                return verdict
            self.sleep(pause)
            pause = min(pause * 2, self.p["poll_interval"])

    def wait_for_rollout(self, manifest: dict | None = None) -> Verdict:
        """wait() with the controller's own deadline: progressDeadlineSeconds plus one grace period."""
        spec = (manifest or self.p["deployment"])["spec"]
        return self.wait(float(spec.get("progressDeadlineSeconds", 600)) + 10)

    def judge(self, pause: float = 0, routed: bool = False) -> Verdict:
        """The rollout's verdict, then (after `pause`) the HTTP and metric gates once it is healthy; the metric
        gates select the pods of the revision the rollout produced. With `routed` (a rolling release behind its
        Service), the gates wait until the Service routes to the new pods only, so the smoke check meets them."""
        verdict = self.wait_for_rollout()
        if verdict.state == "healthy" and routed:
            verdict = self.wait_for_routing(verdict)
        if verdict.state == "healthy":
            self.sleep(pause)
            gates = self.gates(verdict.detail.get("template_hash"))
            if gates.state == "failed":
                verdict = Verdict("failed", gates.gate, gates.evidence, verdict.detail)
            elif gates.detail.get("metrics"):
                verdict.detail["metrics"] = gates.detail["metrics"]
        return verdict

    def wait_for_routing(self, verdict: Verdict, timeout: float = 60) -> Verdict:
        """Wait until no endpoint of the Service is a pod of an earlier ReplicaSet of this Deployment (those drain and
        go within their shutdown delay); read from the EndpointSlices, never assumed."""
        service = self.p["service"]["metadata"]["name"]
        current = verdict.detail.get("replicaset")
        start, pause = self.clock(), 0.1
        while True:
            older = {rs["metadata"]["name"] for rs in self.api.replicasets(self.namespace, self.selector)
                     if rs["metadata"]["name"] != current
                     and any(ref.get("kind") == "Deployment" and ref.get("name") == self.name
                             for ref in rs["metadata"].get("ownerReferences", []))}
            stale = [pod for pod in self.api.endpoint_pods(self.namespace, service)
                     if pod.rsplit("-", 1)[0] in older]
            if not stale:
                verdict.detail["routing_seconds"] = round(self.clock() - start, 2)
                return verdict
            if self.clock() - start > timeout:
                return Verdict("failed", "service-routing", [
                    f"service {service} still routes to pods of the previous revision after {timeout:.0f}s: "
                    f"{', '.join(stale)}"], verdict.detail)
            self.sleep(pause)
            pause = min(pause * 2, 1.0)

    def gates(self, template_hash: str | None = None) -> Verdict:
        smoke = self.p.get("http_smoke") or {}
        if smoke.get("url"):
            verdict = http_smoke(smoke["url"], smoke.get("expect_status", 200))
            if verdict.state == "failed":
                return verdict
        prom = self.p.get("prometheus") or {}
        if not prom.get("url") or not prom.get("queries"):
            return Verdict("healthy")
        return metric_gates(prom["url"], prom["queries"], pod_selector(self.namespace, template_hash),
                            float(prom.get("no_data_timeout") or 0), self.clock, self.sleep)

    # --- writing ------------------------------------------------------------------------------

    def run(self, check_mode: bool = False, record: bool = True) -> dict[str, Any]:
        """Release; with record=False the caller (a canary promotion) keeps the ledger entry."""
        desired = self.p["deployment"]
        before = self.api.get_deployment(self.namespace, self.name)
        previous_rs = None
        if before is not None:
            previous_rs = next((rs for rs in self.api.replicasets(self.namespace, self.selector)
                                if revision_of(rs) == revision_of(before)), None)
        applied = self.api.apply("Deployment", desired)
        changed = before is None or applied["metadata"]["generation"] != before["metadata"]["generation"]
        result: dict[str, Any] = {"changed": changed, "image": _image(desired), "version": self.p["version"],
                                  "previous_image": _image(before) if before else None,
                                  "previous_revision": revision_of(before) if before else None}
        if self.p.get("service"):
            self.api.apply("Service", self.p["service"])
        if check_mode:
            result["verdict"] = {"state": "would-release" if changed else "unchanged"}
            return result
        if not changed:
            verdict = assess(*self._snapshot())
            if verdict.state == "healthy":
                result["verdict"] = verdict.as_dict()
                return result

        entry = ledger_entry(self.p["actor"], result["image"], "rolling", result["previous_image"],
                             self.p["version"], previous_version=self.p.get("previous_version"))
        verdict = self.judge(routed=bool(self.p.get("service")))
        result["verdict"] = verdict.as_dict()
        result["revision"] = verdict.detail.get("revision")
        entry["verdict_seconds"] = verdict.detail.get("seconds")
        if verdict.state == "healthy":
            entry.update(finished=utcnow(), verdict="succeeded", revision=result["revision"],
                         **({"metrics": verdict.detail["metrics"]} if verdict.detail.get("metrics") else {}))
            self._record(entry, record)
            result["ledger_entry"] = entry
            return result

        failure = (f"Release {self.p['version']} ({result['image']}) failed gate {verdict.gate}: "
                   f"{'; '.join(verdict.evidence)}.")
        entry.update(verdict="failed", gate=verdict.gate, evidence=verdict.evidence)
        if not self.p["auto_rollback"] or previous_rs is None:
            entry["finished"] = utcnow()
            self._record(entry, record)
            reason = "automatic rollback is off" if not self.p["auto_rollback"] else "there is no earlier release"
            raise ReleaseFailed(f"{failure} Nothing was restored: {reason}.", {**result, "ledger_entry": entry})

        restored = self.restore(previous_rs)
        entry.update(finished=utcnow(), verdict="rolled_back", rollback_target=restored)
        self._record(entry, record)
        result.update(rolled_back=True, restored=restored, ledger_entry=entry)
        if restored["state"] != "healthy":
            raise ReleaseFailed(f"{failure} Rolling back to {restored['image']} (revision "
                                f"{restored['from_revision']}) did not become healthy either: "
                                f"{'; '.join(restored['evidence'])}.", result)
        raise ReleaseFailed(f"{failure} Restored {restored['image']} (revision {restored['from_revision']}), "
                            f"healthy again after {restored['seconds']}s.", result)

    def _record(self, entry: dict, record: bool) -> None:
        if record:
            self.api.record(self.namespace, self.name, entry)

    def restore(self, replicaset: dict) -> dict[str, Any]:
        """Put the pod template of an earlier ReplicaSet back and wait until it is healthy."""
        template = copy.deepcopy(replicaset["spec"]["template"])
        template.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
        start = self.clock()
        self.api.replace_template(self.namespace, self.name, template)
        deployment = self.api.get_deployment(self.namespace, self.name)
        verdict = self.wait_for_rollout(deployment)
        return {"state": verdict.state, "image": _image({"spec": {"template": template}}),
                "from_revision": revision_of(replicaset), "revision": verdict.detail.get("revision"),
                "evidence": verdict.evidence, "seconds": round(self.clock() - start, 2)}


def _image(deployment: dict | None) -> str | None:
    if not deployment:
        return None
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return containers[0]["image"]


def find_revision(replicasets: list[dict], revision: int | None = None, image: str | None = None) -> dict | None:
    """The ReplicaSet of a recorded revision, chosen by revision number or by image (newest first)."""
    ordered = sorted(replicasets, key=revision_of, reverse=True)
    for rs in ordered:
        if revision is not None and revision_of(rs) == revision:
            return rs
        if image is not None and _image(rs) == image:
            return rs
    return None




def history(replicasets: list[dict]) -> list[dict[str, Any]]:
    """Recorded revisions, newest first: revision, image and ReplicaSet name."""
    return [{"revision": revision_of(rs), "image": _image(rs), "replicaset": rs["metadata"]["name"]}
            for rs in sorted(replicasets, key=revision_of, reverse=True)]


def manual_rollback(engine: RollingRelease, to_revision: int | None, to_version: str | None,
                    actor: str, check_mode: bool = False) -> dict[str, Any]:
    """Restore the previous revision, or the recorded one chosen by revision or version, and wait."""
    deployment = engine.api.get_deployment(engine.namespace, engine.name)
    if deployment is None:
        raise ReleaseFailed(f"Nothing to roll back: deployment {engine.namespace}/{engine.name} does not exist.", {})
    replicasets = engine.api.replicasets(engine.namespace, engine.selector)
    current = revision_of(deployment)
    recorded = history(replicasets)
    if to_revision is not None:
        target = find_revision(replicasets, revision=to_revision)
    elif to_version is not None:
        target = next((rs for rs in sorted(replicasets, key=revision_of, reverse=True)
                       if (_image(rs) or "").rsplit(":", 1)[-1] == to_version), None)
    else:
        # The previous *good* release: the newest earlier revision whose image the ledger saw succeed
        # (failed attempts stay in the ReplicaSet history too); without a ledger, the previous revision.
        good = {e["image"] for e in engine.api.ledger(engine.namespace, engine.name) if e.get("verdict") == "succeeded"}
        earlier = [rs for rs in sorted(replicasets, key=revision_of, reverse=True)
                   if revision_of(rs) < current and _image(rs) != _image(deployment)]
        target = next((rs for rs in earlier if _image(rs) in good), None) if good else next(iter(earlier), None)
    if target is None:
        wanted = (f"revision {to_revision}" if to_revision is not None
                  else f"version {to_version}" if to_version is not None else "an earlier release")
        choices = ", ".join(f"{h['revision']} ({h['image']})" for h in recorded) or "none"
        raise ReleaseFailed(f"Cannot roll back {engine.namespace}/{engine.name} to {wanted}: it is not among the "
                            f"recorded revisions. Recorded: {choices}.", {"history": recorded})
    result: dict[str, Any] = {"from_image": _image(deployment), "from_revision": current,
                              "target_image": _image(target), "target_revision": revision_of(target),
                              "history": recorded}
    if revision_of(target) == current:
        return {**result, "changed": False, "verdict": {"state": "unchanged"}}
    if check_mode:
        return {**result, "changed": True, "verdict": {"state": "would-roll-back"}}
    entry = ledger_entry(actor, _image(target), "manual-rollback", _image(deployment))
    restored = engine.restore(target)
    entry.update(finished=utcnow(), verdict="succeeded" if restored["state"] == "healthy" else "failed",
                 revision=restored["revision"], evidence=restored["evidence"])
    engine.api.record(engine.namespace, engine.name, entry)
    result.update(changed=True, restored=restored, ledger_entry=entry, verdict={"state": restored["state"]})
    if restored["state"] != "healthy":
        raise ReleaseFailed(f"Rolled {engine.namespace}/{engine.name} back to {_image(target)} (revision "
                            f"{revision_of(target)}), but it did not become healthy: "
                            f"{'; '.join(restored['evidence'])}.", result)
    return result


COLOR_LABEL = "colors.io/color"
COLORS = ("blue", "green")


def colored(manifest: dict, color: str) -> dict:
    """The Deployment of one colour: named <name>-<color>, its selector and pods labelled with the colour."""
    body = copy.deepcopy(manifest)
    body["metadata"]["name"] = f"{manifest['metadata']['name']}-{color}"
    body["metadata"].setdefault("labels", {})[COLOR_LABEL] = color
    body["spec"]["selector"]["matchLabels"][COLOR_LABEL] = color
    template = body["spec"].setdefault("template", {})
    template.setdefault("metadata", {}).setdefault("labels", {})[COLOR_LABEL] = color
    return body


def routed(service: dict, color: str) -> dict:
    body = copy.deepcopy(service)
    body["spec"]["selector"][COLOR_LABEL] = color
    return body


class BlueGreenRelease:
    """Two Deployments, <name>-blue and <name>-green; the Service selects one colour.

    The new release goes to the idle colour at full size; only when every gate passes does the Service
    switch to it. The previous colour keeps running, so switching back is instant. A failed release never
    receives traffic: it is scaled to zero and the Service stays where it was.
    """

    def __init__(self, api: ClusterApi, params: dict, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.api, self.p, self.clock, self.sleep = api, params, clock, sleep
        self.namespace = params["namespace"]
        self.name = params["deployment"]["metadata"]["name"]
        if not params.get("service"):
            raise ReleaseFailed("The blue_green strategy needs the Service manifest (it switches its selector).", {})

    def watcher(self, color: str) -> RollingRelease:
        return RollingRelease(self.api, {**self.p, "deployment": colored(self.p["deployment"], color)},
                              clock=self.clock, sleep=self.sleep)

    def active_color(self) -> str | None:
        service = self.api.get_service(self.namespace, self.p["service"]["metadata"]["name"])
        return ((service or {}).get("spec", {}).get("selector") or {}).get(COLOR_LABEL)

    def run(self, check_mode: bool = False) -> dict[str, Any]:
        active = self.active_color()
        target = COLORS[1] if active == COLORS[0] else COLORS[0]
        desired = colored(self.p["deployment"], active or target)
        result: dict[str, Any] = {"strategy": "blue_green", "image": _image(desired), "version": self.p["version"],
                                  "active_color": active, "target_color": target}
        if active is not None:
            live = self.api.get_deployment(self.namespace, desired["metadata"]["name"])
            if live is not None:
                result["previous_image"] = _image(live)
                dry = self.api.apply_dry_run(desired)
                watcher = self.watcher(active)
                if dry["metadata"]["generation"] == live["metadata"]["generation"] \
                        and assess(*watcher._snapshot()).state == "healthy":
                    return {**result, "changed": False, "verdict": {"state": "healthy"}}
        if check_mode:
            return {**result, "changed": True, "verdict": {"state": "would-release"}}

        entry = ledger_entry(self.p["actor"], result["image"], "blue_green", result.get("previous_image"),
                             self.p["version"], color=target, previous_color=active)
        body = colored(self.p["deployment"], target)
        self.api.apply("Deployment", body)  # full size again, also when an earlier failure scaled it to zero
        watcher = self.watcher(target)
        verdict = watcher.judge()
        entry["verdict_seconds"] = verdict.detail.get("seconds")
        result["verdict"] = verdict.as_dict()
        if verdict.state != "healthy":
            self.api.scale(self.namespace, body["metadata"]["name"], 0)
            entry.update(finished=utcnow(), verdict="failed", gate=verdict.gate, evidence=verdict.evidence)
            self.api.record(self.namespace, self.name, entry)
            stayed = (f"traffic stayed on {active} ({result.get('previous_image')})" if active
                      else "no traffic was routed")
            raise ReleaseFailed(f"Release {self.p['version']} ({result['image']}) failed gate {verdict.gate} on "
                                f"{target}: {'; '.join(verdict.evidence)}. The Service was not switched: {stayed}.",
                                {**result, "changed": True, "ledger_entry": entry})
        switch_start = self.clock()
        self.api.apply("Service", routed(self.p["service"], target))
        result["switch_seconds"] = round(self.clock() - switch_start, 3)
        entry.update(finished=utcnow(), verdict="succeeded", revision=verdict.detail.get("revision"))
        self.api.record(self.namespace, self.name, entry)
        return {**result, "changed": True, "active_color": target, "previous_color": active, "ledger_entry": entry}

    def switch_back(self, actor: str, check_mode: bool = False) -> dict[str, Any]:
        """Route the Service back to the other colour, if that colour is there and healthy."""
        active = self.active_color()
        if active is None:
            raise ReleaseFailed(f"Cannot switch back: the Service of {self.namespace}/{self.name} selects no colour.",
                                {})
        other = COLORS[1] if active == COLORS[0] else COLORS[0]
        watcher = self.watcher(other)
        deployment = self.api.get_deployment(self.namespace, f"{self.name}-{other}")
        verdict = assess(*watcher._snapshot()) if deployment else None
        if deployment is None or verdict.state != "healthy" or not deployment["spec"].get("replicas"):
            why = "does not exist" if deployment is None else "is not running healthy at full size"
            raise ReleaseFailed(f"Cannot switch back to {other}: {self.name}-{other} {why}.", {"active_color": active})
        result = {"changed": True, "from_color": active, "to_color": other, "target_image": _image(deployment),
                  "from_image": _image(self.api.get_deployment(self.namespace, f"{self.name}-{active}"))}
        if check_mode:
            return {**result, "verdict": {"state": "would-switch-back"}}
        start = self.clock()
        self.api.apply("Service", routed(self.p["service"], other))
        result["switch_seconds"] = round(self.clock() - start, 3)
        self.api.record(self.namespace, self.name, ledger_entry(
            actor, result["target_image"], "manual-rollback", result["from_image"], finished=utcnow(),
            verdict="succeeded", color=other, previous_color=active))
        return {**result, "verdict": {"state": "healthy"}}


TRACK_LABEL = "colors.io/track"


def canary_of(manifest: dict, replicas: int) -> dict:
    """The canary Deployment: <name>-canary, its own selector, pods still selected by the Service."""
    body = copy.deepcopy(manifest)
    body["metadata"]["name"] = f"{manifest['metadata']['name']}-canary"
    body["metadata"].setdefault("labels", {})[TRACK_LABEL] = "canary"
    body["spec"]["replicas"] = replicas
    body["spec"]["selector"]["matchLabels"][TRACK_LABEL] = "canary"
    body["spec"]["template"].setdefault("metadata", {}).setdefault("labels", {})[TRACK_LABEL] = "canary"
    return body


class CanaryRelease:
    """A stepwise share of the replicas runs the new version beside the stable Deployment; at each step the
    gates run and the canary pauses; any failed gate aborts (canary removed, stable back to full size);
    after the last step the stable Deployment is updated in place and the canary removed."""

    def __init__(self, api: ClusterApi, params: dict, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.api, self.p, self.clock, self.sleep = api, params, clock, sleep
        self.namespace = params["namespace"]
        self.name = params["deployment"]["metadata"]["name"]
        self.stable = RollingRelease(api, params, clock=clock, sleep=sleep)

    def run(self, check_mode: bool = False) -> dict[str, Any]:
        desired = self.p["deployment"]
        total = int(desired["spec"].get("replicas", 1))
        live = self.api.get_deployment(self.namespace, self.name)
        if live is None:  # nothing to compare a canary with: the first release goes out rolling
            return self.stable.run(check_mode=check_mode)
        dry = self.api.apply_dry_run(desired)
        result: dict[str, Any] = {"strategy": "canary", "image": _image(desired), "version": self.p["version"],
                                  "previous_image": _image(live), "steps": []}
        if dry["metadata"]["generation"] == live["metadata"]["generation"]:
            return {**result, "changed": False, "verdict": {"state": "healthy"}}
        if check_mode:
            return {**result, "changed": True, "verdict": {"state": "would-release"}}
        entry = ledger_entry(self.p["actor"], result["image"], "canary", result["previous_image"], self.p["version"])
        for step in self.p["canary_steps"]:
            if step["percent"] >= 100:
                break
            canary = canary_of(desired, step["canary"])
            self.api.apply("Deployment", canary)
            self.api.scale(self.namespace, self.name, step["stable"])
            watcher = RollingRelease(self.api, {**self.p, "deployment": canary}, clock=self.clock, sleep=self.sleep)
            verdict = watcher.judge(pause=self.p.get("canary_pause", 0))
            result["steps"].append({**step, "state": verdict.state})
            if verdict.state != "healthy":
                return self._abort(result, entry, step, verdict, total)
        self.api.scale(self.namespace, self.name, total)
        try:
            promoted = self.stable.run(record=False)  # the stable Deployment takes the new template (rolling, gated)
        except ReleaseFailed as exc:  # the full rollout failed a gate: the stable engine rolled it back
            self.api.scale(self.namespace, f"{self.name}-canary", 0)
            entry.update(finished=utcnow(), verdict="rolled_back", steps=result["steps"],
                         gate=exc.result.get("verdict", {}).get("gate"),
                         evidence=exc.result.get("verdict", {}).get("evidence"))
            self.api.record(self.namespace, self.name, entry)
            raise
        self.api.scale(self.namespace, f"{self.name}-canary", 0)
        entry.update(finished=utcnow(), verdict="succeeded", steps=result["steps"], revision=promoted.get("revision"))
        self.api.record(self.namespace, self.name, entry)
        return {**result, "changed": True, "verdict": promoted["verdict"], "ledger_entry": entry}

    def _abort(self, result, entry, step, verdict, total) -> dict[str, Any]:
        start = self.clock()
        self.api.scale(self.namespace, f"{self.name}-canary", 0)
        self.api.scale(self.namespace, self.name, total)
        restored = self.stable.wait_for_rollout()
        entry.update(finished=utcnow(), verdict="rolled_back", gate=verdict.gate, evidence=verdict.evidence,
                     steps=result["steps"], rollback_target={"image": result["previous_image"],
                                                             "state": restored.state,
                                                             "seconds": round(self.clock() - start, 2)})
        self.api.record(self.namespace, self.name, entry)
        raise ReleaseFailed(
            f"Canary {self.p['version']} ({result['image']}) aborted at {step['percent']}% "
            f"({step['canary']} of {total} pods): gate {verdict.gate} failed: {'; '.join(verdict.evidence)}. "
            f"Canary removed; {result['previous_image']} is back at {total} replicas ({restored.state}).",
            {**result, "changed": True, "rolled_back": True, "ledger_entry": entry})
