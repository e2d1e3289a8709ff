"""Cluster I/O of the release engine: the Kubernetes calls it makes (ClusterApi, over kubernetes.core's dynamic
client; the unit tests stand an in-memory double in its place) and the release ledger's entries."""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable
from typing import Any

from ansible_collections.colors.deploy.plugins.module_utils.colors_k8s import OperatorError

LEDGER_LABEL = "colors.io/release-ledger"
FIELD_MANAGER = "colors-release"


class ReleaseFailed(OperatorError):
    """A release or rollback that did not end healthy; the message names the gate, evidence and outcome."""


TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # every time the ledger records, UTC


def utcnow() -> str:
    return datetime.datetime.now(datetime.UTC).strftime(TIME_FORMAT)


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

    def proxy_get(self, namespace: str, service: str, port: str, path: str) -> tuple[int, bytes]:
        """GET `path` (with its query) of a Service's port through the API server's service proxy, as this run's
        identity: (status, body) of the answer. Reaches the cluster's inside wherever the API server is reachable
        (a runner in the VPC, AWX) - the gates need no other route. An answer of the API server itself that no
        endpoint could give (no endpoints, refused) is a 503 whose body is a Kubernetes Status."""
        from urllib.parse import parse_qsl

        from kubernetes.client.rest import ApiException

        path, _, query = path.partition("?")
        resource_path = f"/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy/{path.lstrip('/')}"
        try:
            response = self.client.request("GET", resource_path, query_params=parse_qsl(query), _request_timeout=10,
                                           serialize=False)
        except ApiException as exc:  # any answer but 2xx
            return exc.status, exc.body if isinstance(exc.body, bytes) else str(exc.body or "").encode()
        return response.status, response.data

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


def image_of(deployment: dict | None) -> str | None:
    """The image of the first container of a Deployment or ReplicaSet (its pod template)."""
    if not deployment:
        return None
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return containers[0]["image"]


# The ClusterApi calls that only read; a read may be asked again, a write is never sent twice.
READS = frozenset({"get_deployment", "get_service", "endpoint_pods", "apply_dry_run", "replicasets", "pods", "ledger",
                   "proxy_get"})


class ApiUnavailable(ReleaseFailed):
    """The Kubernetes API server stopped answering during the run."""


def unavailable(exc: BaseException) -> bool:
    """The API server did not answer (down, restarting, a broken connection) or said it cannot serve now (5xx)."""
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status >= 500:
        return True
    try:
        import urllib3

        if isinstance(exc, urllib3.exceptions.HTTPError):
            return True
    except ImportError:  # pragma: no cover - the kubernetes client brings it
        pass
    return isinstance(exc, (ConnectionError, TimeoutError))


def refused(exc: BaseException) -> bool:
    """The API server's authorizer said no (403)."""
    return getattr(exc, "status", None) == 403


class Resilient:
    """A ClusterApi (or a double of it) whose reads ride out an API server away for up to `tolerance` seconds,
    asked again with back-off; past it, or for a write that could not be sent, ApiUnavailable - one line saying
    what is unknown and that running the same command again converges.

    A read refused (403) that this run was allowed before is asked again within the same tolerance: an API server
    that has just started answers before its authorizer has loaded the grants (kubernetes/kubernetes#121635), as
    when a control-plane instance is replaced mid-release. Past the tolerance the refusal passes through as it came;
    a read never allowed in this run is refused at once, and every other error passes through."""

    def __init__(self, api, what: str, tolerance: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self._api, self._what, self._tolerance = api, what, tolerance
        self._clock, self._sleep = clock, sleep
        self._allowed: set[str] = set()  # the reads the API server answered in this run

    def __getattr__(self, name: str):
        attribute = getattr(self._api, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            start, pause = self._clock(), 0.5
            while True:
                try:
                    answer = attribute(*args, **kwargs)
                    self._allowed.add(name)
                    return answer
                except Exception as exc:
                    waited = self._clock() - start
                    if refused(exc) and name in READS and name in self._allowed and waited < self._tolerance:
                        pass  # asked again, as a read the API server did not answer
                    elif not unavailable(exc):
                        raise
                    elif name not in READS or waited >= self._tolerance:
                        raise ApiUnavailable(self._message(name, waited, exc), {}) from exc
                    self._sleep(pause)
                    pause = min(pause * 2, 5.0)
        return call

    def _message(self, name: str, waited: float, exc: BaseException) -> str:
        kind = "read" if name in READS else "change"
        unknown = ("whether that change was made" if kind == "change"
                   else "what happened since")
        return (f"The Kubernetes API server stopped answering during {self._what}: a {kind} ({name}) failed"
                + (f" for {waited:.0f}s" if kind == "read" else "")
                + f" ({exc.__class__.__name__}: {str(exc)[:200]}). This run stops and writes nothing more; "
                f"{unknown} is unknown. Once the cluster answers, run the same command again: it finds the "
                f"Deployment as it is and converges (docs/runbook.md, \"Resume an aborted release\").")
