"""The release lock: a coordination.k8s.io Lease that allows one release per environment at a time.

The lock expires when its holder stops renewing it (a deploy that died), so a crashed run never blocks the
next one for longer than the lease duration. Writes use the Lease's resourceVersion, so two deploys that
race for a free or expired lock cannot both win.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ansible_collections.colors.deploy.plugins.module_utils.colors_k8s import OperatorError

MICROTIME = "%Y-%m-%dT%H:%M:%S.%fZ"


class LockHeld(OperatorError):
    """Another holder has the lock and it has not expired."""


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _parse_time(value: Any) -> datetime.datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
    text = str(value).replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(text)


def _format_time(value: datetime.datetime) -> str:
    return value.astimezone(datetime.UTC).strftime(MICROTIME)


@dataclass
class LockState:
    holder: str | None
    renewed: datetime.datetime | None
    duration: int
    acquired: datetime.datetime | None
    resource_version: str | None

    def expires(self) -> datetime.datetime | None:
        if self.renewed is None:
            return None
        return self.renewed + datetime.timedelta(seconds=self.duration)

    def held_by_other(self, holder: str, now: datetime.datetime) -> bool:
        expires = self.expires()
        return bool(self.holder) and self.holder != holder and expires is not None and expires > now


class ReleaseLock:
    """Acquire, renew and release the Lease <namespace>/<name> through a CoordinationV1Api-like client."""

    def __init__(self, api, namespace: str, name: str, clock: Callable[[], datetime.datetime] = _utcnow):
        self.api = api
        self.namespace = namespace
        self.name = name
        self.clock = clock

    def read(self) -> LockState | None:
        lease = self.api.read(self.namespace, self.name)
        if lease is None:
            return None
        spec = lease.get("spec") or {}
        return LockState(
            holder=spec.get("holderIdentity"),
            renewed=_parse_time(spec.get("renewTime")),
            duration=int(spec.get("leaseDurationSeconds") or 0),
            acquired=_parse_time(spec.get("acquireTime")),
            resource_version=(lease.get("metadata") or {}).get("resourceVersion"),
        )

    def describe(self, state: LockState | None) -> str:
        if state is None or not state.holder:
            return f"release lock {self.namespace}/{self.name} is free"
        return (f"release lock {self.namespace}/{self.name} is held by {state.holder} since "
                f"{_format_time(state.acquired) if state.acquired else 'an unknown time'}, "
                f"expiring at {_format_time(state.expires()) if state.expires() else 'never'}")

    def acquire(self, holder: str, duration: int, check_mode: bool = False) -> dict[str, Any]:
        now = self.clock()
        state = self.read()
        if state is not None and state.held_by_other(holder, now):
            remaining = int((state.expires() - now).total_seconds())
            raise LockHeld(
                f"Another release is running: {self.describe(state)} (in {remaining}s). Wait for it to finish; "
                f"if its run died, the lock expires by itself, or a person who is sure it is dead releases it "
                f"with -e app_release_lock_force_release=true (which also lets a rollback pre-empt a running "
                f"release: that release then stops).")
        renewing = state is not None and state.holder == holder
        previous = state.holder if state is not None and not renewing else None
        spec = {
            "holderIdentity": holder,
            "leaseDurationSeconds": duration,
            "acquireTime": _format_time(state.acquired if renewing and state.acquired else now),
            "renewTime": _format_time(now),
        }
        if not check_mode:
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec}
            if state is None:
                self.api.create(self.namespace, body)
            else:
                body["metadata"]["resourceVersion"] = state.resource_version
                self.api.replace(self.namespace, self.name, body)
        return {"changed": True, "holder": holder, "previous_holder": previous, "renewed": renewing,
                "expired_holder_taken_over": bool(previous), "lease": spec}

    def release(self, holder: str, force: bool = False, check_mode: bool = False) -> dict[str, Any]:
        state = self.read()
        if state is None or not state.holder:
            return {"changed": False, "holder": None, "previous_holder": None}
        now = self.clock()
        if state.holder != holder and not force and state.held_by_other(holder, now):
            raise LockHeld(f"Not releasing: {self.describe(state)}, not by {holder}.")
        if not check_mode:
            self.api.delete(self.namespace, self.name, state.resource_version)
        return {"changed": True, "holder": None, "previous_holder": state.holder}


class LeaseApi:
    """The few Lease calls the lock needs, on top of kubernetes.client's CoordinationV1Api."""

    def __init__(self, api_client):
        from kubernetes import client

        self._api = client.CoordinationV1Api(api_client)
        self._serialize = api_client.sanitize_for_serialization

    def read(self, namespace: str, name: str) -> dict | None:
        from kubernetes.client.rest import ApiException

        try:
            return self._serialize(self._api.read_namespaced_lease(name, namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create(self, namespace: str, body: dict) -> None:
        self._api.create_namespaced_lease(namespace, body)

    def replace(self, namespace: str, name: str, body: dict) -> None:
        self._api.replace_namespaced_lease(name, namespace, body)

    def delete(self, namespace: str, name: str, resource_version: str | None) -> None:
        from kubernetes import client

        options = client.V1DeleteOptions(preconditions=client.V1Preconditions(resource_version=resource_version))
        self._api.delete_namespaced_lease(name, namespace, body=options)
