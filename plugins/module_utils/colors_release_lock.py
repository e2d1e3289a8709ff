"""The release lock: a coordination.k8s.io Lease that allows one release per environment at a time.

The lock expires when its holder stops renewing it (a deploy that died), so a crashed run never blocks the
next one for longer than the lease duration. Writes use the Lease's resourceVersion, so two deploys that
race for a free or expired lock cannot both win.

While the release engine runs, a Fence holds the lock for it: it renews the Lease at a third of its duration from
the engine's waits, and once more before each write the engine makes (FencedApi), which goes ahead only while the
Lease still names this run. A run whose lock was taken from it (a person pre-empted it, or it stalled past the
lease and another run took over) writes nothing more: LockLost.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ansible_collections.colors.deploy.plugins.module_utils.colors_k8s import OperatorError

MICROTIME = "%Y-%m-%dT%H:%M:%S.%fZ"


class LockHeld(OperatorError):
    """Another holder has the lock and it has not expired."""


class LockLost(OperatorError):
    """This run held the release lock and no longer does: it must write nothing more."""


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

    def _body(self, spec: dict, resource_version: str | None = None) -> dict:
        """The Lease to write; with the resourceVersion read, a write that races another fails (409)."""
        metadata = {"name": self.name, "namespace": self.namespace,
                    **({"resourceVersion": resource_version} if resource_version else {})}
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}

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
            if state is None:
                self.api.create(self.namespace, self._body(spec))
            else:
                self.api.replace(self.namespace, self.name, self._body(spec, state.resource_version))
        return {"changed": True, "holder": holder, "previous_holder": previous, "renewed": renewing,
                "expired_holder_taken_over": bool(previous), "lease": spec}

    def renew(self, holder: str, duration: int, attempts: int = 3) -> LockState:
        """Renew the lock this holder has (keeping its acquire time); LockLost when the Lease is gone or names
        another holder - taken over, or broken by a person - and never re-creates it."""
        for _ in range(attempts):
            state = self.read()
            if state is None or state.holder != holder:
                raise LockLost(
                    f"This run ({holder}) lost the release lock: {self.describe(state)}. It wrote nothing after "
                    f"that and stops here; what serves is now for the lock's holder to decide (the release ledger "
                    f"and the Deployment say where it stands).")
            now = self.clock()
            spec = {"holderIdentity": holder, "leaseDurationSeconds": duration,
                    "acquireTime": _format_time(state.acquired or now), "renewTime": _format_time(now)}
            try:
                self.api.replace(self.namespace, self.name, self._body(spec, state.resource_version))
            except Exception as exc:  # a write between our read and replace: read again, who holds it now?
                if getattr(exc, "status", None) != 409:
                    raise
                continue
            return LockState(holder, _parse_time(spec["renewTime"]), duration, state.acquired, None)
        raise LockLost(f"This run ({holder}) could not renew the release lock {self.namespace}/{self.name}: it "
                       f"changed under each of {attempts} attempts. It stops here and writes nothing more.")

    def release(self, holder: str, force: bool = False, check_mode: bool = False) -> dict[str, Any]:
        """Give the lock back. A lock another holder has now (it took over, or pre-empted this run) is left to it:
        there is nothing of this run's to give back; force breaks it all the same."""
        state = self.read()
        if state is None or not state.holder:
            return {"changed": False, "holder": None, "previous_holder": None}
        now = self.clock()
        if state.holder != holder and not force and state.held_by_other(holder, now):
            return {"changed": False, "holder": state.holder, "previous_holder": None,
                    "msg": f"Not releasing: {self.describe(state)}, not by {holder}."}
        if not check_mode:
            self.api.delete(self.namespace, self.name, state.resource_version)
        return {"changed": True, "holder": None, "previous_holder": state.holder}


# The engine's calls that change the cluster; FencedApi lets each through only while this run holds the lock.
WRITES = frozenset({"apply", "scale", "replace_template", "record"})


class Fence:
    """The release lock held for the release engine while it runs.

    sleep() is the engine's wait: it sleeps, then renews the lock when a third of its duration has passed since the
    last renewal. A renewal that fails for want of the API server is tried again at the next wait while the lease
    still has a third of its duration left; past that, or when the Lease names another holder, LockLost. hold()
    renews at once and must succeed: FencedApi calls it before each write, so a run that lost the lock writes nothing
    more. (A forced pre-emption landing between that renewal and its write - milliseconds - lets that one write
    through; the pre-empting run's own changed-during-release check then stops this one.)"""

    def __init__(self, lock: ReleaseLock, holder: str, duration: int, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.lock, self.holder, self.duration = lock, holder, duration
        self.clock, self._sleep = clock, sleep
        self.every = max(duration / 3, 1.0)
        self.renewed_at: float | None = None

    def hold(self) -> None:
        self.lock.renew(self.holder, self.duration)
        self.renewed_at = self.clock()

    def sleep(self, seconds: float) -> None:
        self._sleep(seconds)
        if self.renewed_at is not None and self.clock() - self.renewed_at < self.every:
            return
        try:
            self.hold()
        except LockLost:
            raise
        except Exception as exc:  # the API server away for a moment: try again at the next wait, while it can
            since = self.clock() - (self.renewed_at or 0)
            if self.renewed_at is None or since > self.duration - self.every:
                raise LockLost(f"This run ({self.holder}) could not renew the release lock "
                               f"{self.lock.namespace}/{self.lock.name} for {since:.0f}s "
                               f"of its {self.duration}s ({exc.__class__.__name__}: {exc}). It stops here and writes "
                               f"nothing more.") from exc

    def guard(self, api):
        return FencedApi(api, self)


class FencedApi:
    """The engine's cluster calls (ClusterApi or a double of it), each write made only after hold() succeeded."""

    def __init__(self, api, fence: Fence):
        self._api, self._fence = api, fence

    def __getattr__(self, name: str):
        attribute = getattr(self._api, name)
        if name not in WRITES:
            return attribute

        def fenced(*args, **kwargs):
            self._fence.hold()
            return attribute(*args, **kwargs)
        return fenced


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


LOCK_ARG_SPEC = dict(type="dict", options=dict(holder=dict(type="str", required=True),
                                               name=dict(type="str", default="colors-release"),
                                               duration=dict(type="int", default=60)))


def held_for_engine(api, api_client, namespace: str, lock: dict | None, check_mode: bool):
    """(api, sleep) for the release engine: fenced by the release lock the task names and holding it from the
    start (LockLost at once if this run does not have it); unfenced without a lock or in check mode."""
    if not lock or check_mode:
        return api, time.sleep
    fence = Fence(ReleaseLock(LeaseApi(api_client), namespace, lock["name"]), lock["holder"], lock["duration"])
    fence.hold()
    return fence.guard(api), fence.sleep
