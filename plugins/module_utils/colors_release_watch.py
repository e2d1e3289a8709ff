"""The rollout watcher of the release engine: the verdict of a rollout read from the cluster (rollout conditions,
readiness, crash loops, image pulls), the routing of its Service, and the gates that follow it (an HTTP smoke check,
Prometheus thresholds on the new pods' own series). Every strategy judges its pods with one RolloutWatcher."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ansible_collections.colors.deploy.plugins.module_utils.colors_release_cluster import ClusterApi, image_of
from ansible_collections.colors.deploy.plugins.module_utils.colors_release_health import (
    Verdict,
    assess,
    changed_by_another,
    prometheus_verdict,
)


def _require_http(url: str) -> None:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"{url!r} is not an http:// or https:// URL")


@dataclass
class Target:
    """Where a gate sends its requests: `get(path)` -> (status, body) of a GET of the path (with its query), or
    OSError when nothing answered; `where` names it in messages (the URL, or the Service and the route to it)."""

    where: str
    get: Callable[[str], tuple[int, bytes]]


def url_target(url: str, timeout: float = 10.0) -> Target:
    """A target reached directly: the URL with the path appended (an empty path: the URL itself)."""
    def get(path: str) -> tuple[int, bytes]:
        full = url.rstrip("/") + path if path else url
        _require_http(full)
        try:
            with urllib.request.urlopen(full, timeout=timeout) as resp:  # noqa: S310 # nosec B310 - http(s) only, checked above
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read() or b""
    return Target(url, get)


def service_target(api: ClusterApi, namespace: str, service: str, port: str) -> Target:
    """A target reached through the API server's service proxy, as the run's own identity: from wherever the
    deploy runs (a runner in the VPC, AWX), with no other route into the cluster. When the API server itself
    answers that no endpoint could (a Kubernetes Status of 503: no endpoints, refused), nothing answered."""
    def get(path: str) -> tuple[int, bytes]:
        status, body = api.proxy_get(namespace, service, port, path)
        if status == 503 and b'"kind":"Status"' in body.replace(b" ", b""):
            try:
                message = json.loads(body).get("message", "")
            except ValueError:
                message = body[:200].decode(errors="replace")
            raise ConnectionError(f"the API server's proxy reached no endpoint: {message}")
        return status, body
    return Target(f"service {namespace}/{service}:{port} (through the API server)", get)


def http_smoke(target: Target | str, expect_status: int, path: str = "", retry_seconds: float = 10.0,
               clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> Verdict:
    """GET the path of the target (a URL: the URL itself) once and judge its status. A connection that fails
    (refused, reset, timed out, no endpoint) is asked again for up to `retry_seconds`: a node's proxy can lag a
    second behind the endpoints; an answer is final."""
    target = url_target(target) if isinstance(target, str) else target
    what = f"{target.where}{path}" if path else target.where
    start = clock()
    while True:
        try:
            status, _ = target.get(path)
            break
        except ValueError as exc:
            return Verdict("failed", "http-smoke", [f"GET {what}: {exc}"])
        except (urllib.error.URLError, OSError) as exc:
            if clock() - start >= retry_seconds:
                return Verdict("failed", "http-smoke", [f"GET {what}: {exc}"])
            sleep(0.5)
    if status != expect_status:
        return Verdict("failed", "http-smoke", [f"GET {what} answered {status}, expected {expect_status}"])
    return Verdict("healthy")


# The errorType of a query Prometheus could not answer at all (down, unreachable, 5xx): the gate is inconclusive.
UNREACHABLE = "unreachable"
PROMETHEUS_UNREACHABLE = "prometheus-unreachable"


def prometheus_query(target: Target | str, query: str, path: str = "/api/v1/query", **extra: Any) -> dict:
    """The JSON answer of a query (`path` /api/v1/query_range with start, end and step in `extra`: over a range);
    Prometheus unreachable or answering 5xx: an error of type UNREACHABLE."""
    target = url_target(target) if isinstance(target, str) else target
    try:
        status, body = target.get(f"{path}?{urllib.parse.urlencode({'query': query, **extra})}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return {"status": "error", "errorType": UNREACHABLE,
                "error": f"Prometheus at {target.where} unreachable: {exc}"}
    if status >= 500:  # Prometheus (or what is in front of it) cannot answer now: not the query's fault
        return {"status": "error", "errorType": UNREACHABLE,
                "error": f"Prometheus at {target.where} answered HTTP {status}"}
    try:
        return json.loads(body or b"{}") or {"status": "error", "error": f"HTTP {status}"}
    except ValueError:
        return {"status": "error", "error": f"HTTP {status}: {body[:200]!r}"}


# Where a metric gate's query says `$pods`, the engine puts the label matchers of the pods it judges: their namespace
# and their ReplicaSet's pod-template-hash, as the PodMonitor of the monitoring role labels every scraped series
# (podTargetLabels: pod-template-hash -> pod_template_hash). So rolling, canary and blue-green releases are each
# judged by the new pods alone, never by the old ones beside them.
POD_SELECTOR = "$pods"
TEMPLATE_HASH_LABEL = "pod_template_hash"


def pod_selector(namespace: str, template_hash: str | None) -> str:
    return f'namespace="{namespace}",{TEMPLATE_HASH_LABEL}="{template_hash or ""}"'


def metric_gates(url: Target | str, queries: list[dict], selector: str, no_data_timeout: float,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> Verdict:
    """Every query once with data and within its maximum: healthy; the first above its maximum: failed. A query with
    no data is inconclusive and asked again (new pods need a scrape or two) until `no_data_timeout` seconds have
    passed; then the gate fails, naming the query, the selector and how many of the pods Prometheus scrapes.
    Prometheus itself unreachable (or answering 5xx) is inconclusive too: asked again within the same bound, then the
    gate fails as `prometheus-unreachable` - metrics nobody could read never promote a release."""
    start = clock()
    pending = [{**q, "query": str(q["query"]).replace(POD_SELECTOR, selector)} for q in queries]
    values: dict[str, float] = {}
    pause = 0.5
    unreachable: str | None = None
    while True:
        waiting = []
        unreachable = None
        for check in pending:
            answer = prometheus_query(url, check["query"])
            if answer.get("errorType") == UNREACHABLE:
                unreachable = answer.get("error")
                waiting = pending  # ask every pending query again once Prometheus answers
                break
            verdict = prometheus_verdict(check["name"], check["query"], answer, float(check["max"]))
            if verdict.state == "failed":
                return verdict
            if verdict.state == "no-data":
                waiting.append(check)
            else:
                values[check["name"]] = verdict.detail["value"]
        if not waiting:
            return Verdict("healthy", detail={"metrics": values})
        waited = clock() - start
        if waited >= no_data_timeout and unreachable:
            return Verdict("failed", PROMETHEUS_UNREACHABLE, [
                f"{unreachable}, still after {waited:.0f}s: the release's metrics could not be read, so its gates are "
                "inconclusive and it is not promoted"], {"inconclusive": True})
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


# While a rollout waits, its state is reported at least this often (seconds), also when nothing changes.
PROGRESS_EVERY = 10.0


def progress_of(params: dict) -> Callable[[str], None]:
    """The progress reporter the module put in the engine's params (`_progress`), or one that says nothing."""
    return params.get("_progress") or (lambda message: None)


class RolloutWatcher:
    """Watches the rollout of one Deployment (`manifest`: its name and selector) and runs the gates of `params`
    (http_smoke, prometheus, service, poll_interval - the colors_release module's options)."""

    def __init__(self, api: ClusterApi, namespace: str, manifest: dict, params: dict,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.api, self.namespace, self.manifest, self.p = api, namespace, manifest, params
        self.clock, self.sleep = clock, sleep
        self.name = manifest["metadata"]["name"]
        self.report = progress_of(params)
        labels = manifest["spec"]["selector"]["matchLabels"]
        self.selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        self.applied: dict | None = None
        # The Service a smoke gate by path asks (through the API server): the release's, or a blue-green release's
        # preview Service, which routes to the colour being judged.
        self.smoke_service: str | None = None

    def snapshot(self) -> tuple[dict | None, list[dict], list[dict]]:
        """The Deployment, its ReplicaSets and its pods, as the cluster has them now."""
        deployment = self.api.get_deployment(self.namespace, self.name)
        return deployment, self.api.replicasets(self.namespace, self.selector), self.api.pods(self.namespace,
                                                                                                  self.selector)

    def expect(self, applied: dict | None) -> None:
        """What this run wrote to the Deployment (the object the API server returned): from now on a later
        generation, or no Deployment at all, is another hand's change and fails the verdict - never a success
        read off someone else's rollout."""
        self.applied = {"name": self.name, "generation": applied["metadata"].get("generation"),
                        "image": image_of(applied)} if applied else None

    def changed(self) -> Verdict | None:
        """The failed verdict of another hand's change to the Deployment since expect(), read now; else None."""
        return changed_by_another(self.api.get_deployment(self.namespace, self.name), self.applied)

    def state(self) -> Verdict:
        """The verdict of the rollout at this moment (no waiting)."""
        deployment, replicasets, pods = self.snapshot()
        return changed_by_another(deployment, self.applied) or assess(deployment, replicasets, pods)

    def wait(self, deadline: float) -> Verdict:
        """Poll the gates until healthy or failed; time out only past the controller's own deadline. Reports the
        rollout's state whenever it changes, and at least every PROGRESS_EVERY seconds while it does not."""
        start = self.clock()
        pause = 0.02  # look again quickly first (a rollback to running pods settles in milliseconds), then back off
        said, said_at = None, start
        while True:
            verdict = self.state()
            now = self.clock()
            if verdict.done:
                verdict.detail["seconds"] = round(now - start, 2)
                self.report(f"{self.name}: rollout {verdict.state}"
                            f"{' at gate ' + verdict.gate if verdict.gate else ''} after {now - start:.0f}s")
                return verdict
            if verdict.evidence != said or now - said_at >= PROGRESS_EVERY:
                self.report(f"{'; '.join(verdict.evidence) or self.name + ': progressing'} ({now - start:.0f}s)")
                said, said_at = verdict.evidence, now
            if self.clock() - start > deadline:
                verdict.state, verdict.gate = "failed", "rollout-timeout"
                verdict.evidence.append(f"no verdict from the controller within {deadline:.0f}s")
                return verdict
            self.sleep(pause)
            pause = min(pause * 2, self.p["poll_interval"])

    def wait_for_rollout(self, manifest: dict | None = None) -> Verdict:
        """wait() with the controller's own deadline: progressDeadlineSeconds plus one grace period."""
        spec = (manifest or self.manifest)["spec"]
        return self.wait(float(spec.get("progressDeadlineSeconds", 600)) + 10)

    def judge(self, pause: float = 0, routed: bool = False) -> Verdict:
        """The rollout's verdict, then (after `pause`) the HTTP and metric gates once it is healthy; the metric
        gates select the pods of the revision the rollout produced. With `routed` (a rolling release behind its
        Service), the gates wait until the Service routes to the new pods only, so the smoke check meets them."""
        verdict = self.wait_for_rollout()
        if verdict.state == "healthy" and routed:
            verdict = self.wait_for_routing(verdict)
        if verdict.state == "healthy":
            if pause:
                self.report(f"{self.name}: healthy; baking {pause:.0f}s before the gates")
            self.sleep(pause)
            gates = self.gates(verdict.detail.get("template_hash"))
            self.report(f"{self.name}: gates {gates.state}"
                        + (f" ({gates.gate}: {'; '.join(gates.evidence)})" if gates.state == "failed" else ""))
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

    def smoke_target(self) -> tuple[Target, str] | None:
        """Where the smoke gate asks, and the path: a blue-green colour through its preview Service when a path is
        given (the release's URL reaches the colour that serves, not the one judged); otherwise the URL if given,
        else the path through the release's Service."""
        smoke = self.p.get("http_smoke") or {}
        by_service = smoke.get("path") and (self.smoke_service or not smoke.get("url"))
        if by_service:
            service = self.smoke_service or self.p["service"]["metadata"]["name"]
            return service_target(self.api, self.namespace, service, smoke.get("port") or "http"), smoke["path"]
        return (url_target(smoke["url"]), "") if smoke.get("url") else None

    def smoke_gate(self) -> Verdict:
        """The HTTP smoke check, when the release has one."""
        smoke = self.p.get("http_smoke") or {}
        where = self.smoke_target()
        if where:
            verdict = http_smoke(where[0], smoke.get("expect_status", 200), where[1], clock=self.clock,
                                 sleep=self.sleep)
            if verdict.state == "failed":
                return verdict
        return Verdict("healthy")

    def prometheus_target(self) -> Target | None:
        """The release's Prometheus: by URL, or its Service through the API server; None without one."""
        prom = self.p.get("prometheus") or {}
        service = prom.get("service") or {}
        if not (prom.get("url") or service):
            return None
        return url_target(prom["url"]) if prom.get("url") else service_target(
            self.api, service["namespace"], service["name"], service["port"])

    def gates(self, template_hash: str | None = None) -> Verdict:
        verdict = self.smoke_gate()
        prom = self.p.get("prometheus") or {}
        target = self.prometheus_target()
        if verdict.state == "failed" or target is None or not prom.get("queries"):
            return verdict
        return metric_gates(target, prom["queries"], pod_selector(self.namespace, template_hash),
                            float(prom.get("no_data_timeout") or 0), self.clock, self.sleep)
