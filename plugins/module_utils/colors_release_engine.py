"""The release engine: the strategies (rolling, blue-green, canary) and rollback, on top of the cluster I/O
(colors_release_cluster: ClusterApi, the ledger) and the rollout watcher (colors_release_watch: verdicts and gates).
Each strategy judges its pods with a RolloutWatcher of its own; none uses another's internals.

The engine talks to the cluster only through ClusterApi, so that its decisions are unit-tested with an in-memory
double (tests/unit/plugins/module_utils/test_colors_release_engine.py).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any, NoReturn

from ansible_collections.colors.deploy.plugins.module_utils.colors_release_analysis import (
    Analysis,
    analyse,
    baseline_of,
)
from ansible_collections.colors.deploy.plugins.module_utils.colors_release_cluster import (
    ClusterApi,
    ReleaseFailed,
    image_of,
    ledger_entry,
    utcnow,
)
from ansible_collections.colors.deploy.plugins.module_utils.colors_release_health import (
    CHANGED_DURING_RELEASE,
    Verdict,
    revision_of,
)
from ansible_collections.colors.deploy.plugins.module_utils.colors_release_lock import LockLost
from ansible_collections.colors.deploy.plugins.module_utils.colors_release_watch import (
    RolloutWatcher,
    Target,
    pod_selector,
)


def ledger_notes(holder: str | None, freeze_override: str | None = None,
                 contract_migrations: list[str] | None = None, committed: str | None = None,
                 restores: bool = False) -> dict[str, Any]:
    """The ledger fields naming the release lock's holder this run broke to run, if it broke one, why it went
    out during a deploy freeze, if it did, the migrations it ran that are not expand-only, if any, when its
    commit was made, if known (the lead time for changes runs from it), and whether it restores an earlier
    version (a rollback that releases it again: the report counts it as a restoration, not a change)."""
    return {**({"pre_empted": holder} if holder else {}),
            **({"freeze_override": freeze_override} if freeze_override else {}),
            **({"contract_migrations": list(contract_migrations)} if contract_migrations else {}),
            **({"committed": committed} if committed else {}),
            **({"rollback": True} if restores else {})}


def release_notes(params: dict) -> dict[str, Any]:
    """ledger_notes of a release's parameters."""
    return ledger_notes(params.get("pre_empts"), params.get("freeze_override"), params.get("contract_migrations"),
                        params.get("committed"), bool(params.get("restores")))


def past_a_contract(ledger: list[dict], target_image: str | None) -> dict | None:
    """The newest ledger entry, since the target image last served (its newest succeeded entry), of a release that
    ran a migration that is not expand-only: the target cannot run on the schema it left. None when there is none."""
    entries = sorted(ledger, key=lambda e: str(e.get("id", "")))
    served = max((i for i, e in enumerate(entries) if e.get("image") == target_image
                  and e.get("verdict") == "succeeded"), default=-1)
    return next((e for e in reversed(entries[served + 1:]) if e.get("contract_migrations")), None)


def routing(api: ClusterApi, namespace: str, service: str | None) -> str:
    """Where a Service sends traffic, as read back now: the colour its selector names, and the pods its EndpointSlices
    list with the image each runs - never where a release meant to leave it. Empty without a Service."""
    if not service:
        return ""
    live = api.get_service(namespace, service)
    if live is None:
        return f" Read back now: service {service} does not exist, so no traffic is routed."
    selector = (live.get("spec") or {}).get("selector") or {}
    color = selector.get(COLOR_LABEL)
    where = f"service {service}" + (f" selects {color} and" if color else "")
    listed = set(api.endpoint_pods(namespace, service))
    if not listed:
        return f" Read back now: {where} lists no endpoint, so no traffic is routed."
    images: dict[str, int] = {}
    for pod in api.pods(namespace, ",".join(f"{k}={v}" for k, v in sorted(selector.items()))) if selector else []:
        if pod["metadata"]["name"] in listed:
            image = pod["spec"]["containers"][0]["image"]
            images[image] = images.get(image, 0) + 1
    running = ", ".join(f"{count} of {image}" for image, count in sorted(images.items())) or "none it selects"
    return f" Read back now: {where} routes to {len(listed)} pods ({running})."


def refuse_past_a_contract(ledger: list[dict], target_image: str | None, what: str) -> None:
    """Raise, naming the migration, when rolling back to target_image would run it on a schema it cannot use."""
    blocker = past_a_contract(ledger, target_image)
    if blocker:
        raise ReleaseFailed(
            f"{what} to {target_image} refused: release {blocker.get('version')} ({blocker.get('image')}) ran "
            f"migration {', '.join(blocker['contract_migrations'])}, which is not expand-only (contract): "
            f"{target_image} cannot run on that schema. Nothing was changed. Roll forward instead: release a "
            "version that includes the migration.", {"blocked_by": blocker})


def refuse_an_earlier_release_past_a_contract(ledger: list[dict], image: str | None, version: str) -> None:
    """Raise when the image being released served before a release that ran a contract migration (a release of an
    earlier version is a rollback by another name); an image that never served is not judged here - its own
    migration refuses a schema ahead of it."""
    if any(e.get("image") == image and e.get("verdict") == "succeeded" for e in ledger):
        refuse_past_a_contract(ledger, image, f"Releasing {version} again, going back")


class RollingRelease:
    """Rolling update with health gates, fail-fast verdicts and automatic rollback."""

    def __init__(self, api: ClusterApi, params: dict, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.api = api
        self.p = params
        self.clock = clock
        self.namespace = params["namespace"]
        self.name = params["deployment"]["metadata"]["name"]
        self.watcher = RolloutWatcher(api, self.namespace, params["deployment"], params, clock=clock, sleep=sleep)
        self.selector = self.watcher.selector

    def run(self, check_mode: bool = False, record: bool = True) -> dict[str, Any]:
        """Release; with record=False the caller (a canary promotion) keeps the ledger entry."""
        desired = self.p["deployment"]
        before = self.api.get_deployment(self.namespace, self.name)
        previous_rs = None
        if before is not None:
            previous_rs = next((rs for rs in self.api.replicasets(self.namespace, self.selector)
                                if revision_of(rs) == revision_of(before)), None)
        applied = self.api.apply("Deployment", desired)
        self.watcher.expect(applied)
        changed = before is None or applied["metadata"]["generation"] != before["metadata"]["generation"]
        result: dict[str, Any] = {"changed": changed, "image": image_of(desired), "version": self.p["version"],
                                  "previous_image": image_of(before) if before else None,
                                  "previous_revision": revision_of(before) if before else None}
        if self.p.get("service"):
            self.api.apply("Service", self.p["service"])
        if check_mode:
            result["verdict"] = {"state": "would-release" if changed else "unchanged"}
            return result
        if not changed:
            verdict = self.watcher.state()
            if verdict.state == "healthy":
                result["verdict"] = verdict.as_dict()
                return result

        entry = ledger_entry(self.p["actor"], result["image"], "rolling", result["previous_image"],
                             self.p["version"], previous_version=self.p.get("previous_version"),
                             **release_notes(self.p))
        self.watcher.report(f"rolling {self.name} to {result['image']} (revision of {self.p['version']})")
        verdict = self.watcher.judge(routed=bool(self.p.get("service")))
        if verdict.state == "healthy":  # healthy as judged, and still what this run applied when it says so
            verdict = self.watcher.changed() or verdict
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
        if verdict.gate == CHANGED_DURING_RELEASE:  # another hand owns the Deployment now: neither fight nor claim it
            entry.update(verdict="aborted", finished=utcnow())
            try:
                self._record(entry, record)
            except LockLost as lost:  # that hand took the lock from this run (a rollback pre-empting it)
                raise ReleaseFailed(f"{failure} This release stopped: it restored nothing and recorded nothing. "
                                    f"{lost}", result) from lost
            raise ReleaseFailed(f"{failure} This release stopped: it restored nothing and recorded no success.",
                                {**result, "ledger_entry": entry})
        contract = self.p.get("contract_migrations") or []
        if not self.p["auto_rollback"] or previous_rs is None or contract:
            entry["finished"] = utcnow()
            self._record(entry, record)
            reason = ("automatic rollback is off" if not self.p["auto_rollback"]
                      else "there is no earlier release" if previous_rs is None
                      else (f"this release ran migration {', '.join(contract)}, which is not expand-only (contract): "
                            f"{image_of(previous_rs)} cannot run on that schema. Roll forward instead: release a "
                            "version that fixes this one"))
            raise ReleaseFailed(f"{failure} Nothing was restored: {reason}.{self._routing()}",
                                {**result, "ledger_entry": entry})

        self.watcher.report(f"gate {verdict.gate} failed: rolling back to revision {revision_of(previous_rs)}")
        restored = self.restore(previous_rs)
        entry.update(finished=utcnow(), verdict="rolled_back", rollback_target=restored)
        self._record(entry, record)
        result.update(rolled_back=True, restored=restored, ledger_entry=entry)
        if restored["state"] != "healthy":
            raise ReleaseFailed(f"{failure} Rolling back to {restored['image']} (revision "
                                f"{restored['from_revision']}) did not become healthy either: "
                                f"{'; '.join(restored['evidence'])}.{self._routing()}", result)
        raise ReleaseFailed(f"{failure} Restored {restored['image']} (revision {restored['from_revision']}), "
                            f"healthy again after {restored['seconds']}s.{self._routing()}", result)

    def _routing(self) -> str:
        return routing(self.api, self.namespace, (self.p.get("service") or {}).get("metadata", {}).get("name"))

    def _record(self, entry: dict, record: bool) -> None:
        if record:
            self.api.record(self.namespace, self.name, entry)

    def restore(self, replicaset: dict) -> dict[str, Any]:
        """Put the pod template of an earlier ReplicaSet back and wait until it is healthy."""
        template = copy.deepcopy(replicaset["spec"]["template"])
        template.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
        start = self.clock()
        self.watcher.expect(self.api.replace_template(self.namespace, self.name, template))
        deployment = self.api.get_deployment(self.namespace, self.name)
        verdict = self.watcher.wait_for_rollout(deployment)
        return {"state": verdict.state, "image": image_of({"spec": {"template": template}}),
                "from_revision": revision_of(replicaset), "revision": verdict.detail.get("revision"),
                "evidence": verdict.evidence, "seconds": round(self.clock() - start, 2)}


def find_revision(replicasets: list[dict], revision: int | None = None, image: str | None = None) -> dict | None:
    """The ReplicaSet of a recorded revision, chosen by revision number or by image (newest first)."""
    ordered = sorted(replicasets, key=revision_of, reverse=True)
    for rs in ordered:
        if revision is not None and revision_of(rs) == revision:
            return rs
        if image is not None and image_of(rs) == image:
            return rs
    return None




def history(replicasets: list[dict]) -> list[dict[str, Any]]:
    """Recorded revisions, newest first: revision, image and ReplicaSet name."""
    return [{"revision": revision_of(rs), "image": image_of(rs), "replicaset": rs["metadata"]["name"]}
            for rs in sorted(replicasets, key=revision_of, reverse=True)]


def manual_rollback(engine: RollingRelease, to_revision: int | None, to_version: str | None,
                    actor: str, check_mode: bool = False, pre_empts: str | None = None) -> dict[str, Any]:
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
                       if (image_of(rs) or "").rsplit(":", 1)[-1] == to_version), None)
    else:
        # The previous *good* release: the newest earlier revision whose image the ledger saw succeed
        # (failed attempts stay in the ReplicaSet history too); without a ledger, the previous revision.
        good = {e["image"] for e in engine.api.ledger(engine.namespace, engine.name) if e.get("verdict") == "succeeded"}
        earlier = [rs for rs in sorted(replicasets, key=revision_of, reverse=True)
                   if revision_of(rs) < current and image_of(rs) != image_of(deployment)]
        target = next((rs for rs in earlier if image_of(rs) in good), None) if good else next(iter(earlier), None)
    if target is None:
        wanted = (f"revision {to_revision}" if to_revision is not None
                  else f"version {to_version}" if to_version is not None else "an earlier release")
        choices = ", ".join(f"{h['revision']} ({h['image']})" for h in recorded) or "none"
        raise ReleaseFailed(f"Cannot roll back {engine.namespace}/{engine.name} to {wanted}: it is not among the "
                            f"recorded revisions. Recorded: {choices}.", {"history": recorded})
    result: dict[str, Any] = {"from_image": image_of(deployment), "from_revision": current,
                              "target_image": image_of(target), "target_revision": revision_of(target),
                              "history": recorded}
    if revision_of(target) == current:
        return {**result, "changed": False, "verdict": {"state": "unchanged"}}
    refuse_past_a_contract(engine.api.ledger(engine.namespace, engine.name), image_of(target), "Rollback")
    if check_mode:
        return {**result, "changed": True, "verdict": {"state": "would-roll-back"}}
    entry = ledger_entry(actor, image_of(target), "manual-rollback", image_of(deployment), **ledger_notes(pre_empts))
    restored = engine.restore(target)
    entry.update(finished=utcnow(), verdict="succeeded" if restored["state"] == "healthy" else "failed",
                 revision=restored["revision"], evidence=restored["evidence"])
    engine.api.record(engine.namespace, engine.name, entry)
    result.update(changed=True, restored=restored, ledger_entry=entry, verdict={"state": restored["state"]})
    if restored["state"] != "healthy":
        raise ReleaseFailed(f"Rolled {engine.namespace}/{engine.name} back to {image_of(target)} (revision "
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


PREVIEW_SUFFIX = "-preview"


def preview(service: dict, color: str) -> dict:
    """The preview Service of a blue-green release: <service>-preview, routing to the colour being judged, inside
    the cluster only (ClusterIP, no node port), so its gates meet the new colour before the Service switches."""
    body = routed(service, color)
    body["metadata"]["name"] = service["metadata"]["name"] + PREVIEW_SUFFIX
    body["spec"]["type"] = "ClusterIP"
    body["spec"]["ports"] = [{k: v for k, v in port.items() if k != "nodePort"}
                             for port in body["spec"].get("ports") or []]
    return body


class BlueGreenRelease:
    """Two Deployments, <name>-blue and <name>-green; the Service selects one colour.

    The new release goes to the idle colour at full size; only when every gate passes does the Service
    switch to it. The previous colour keeps running, so switching back is instant. A failed release never
    receives traffic: it is scaled to zero and the Service stays where it was.

    With a `judge` (and a Prometheus), the switch is followed by an analysis: the new colour under the traffic it
    now takes against the previous colour's before the switch; a failure switches back at once.
    """

    def __init__(self, api: ClusterApi, params: dict, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, wall: Callable[[], float] = time.time):
        self.api, self.p, self.clock, self.sleep, self.wall = api, params, clock, sleep, wall
        self.namespace = params["namespace"]
        self.name = params["deployment"]["metadata"]["name"]
        if not params.get("service"):
            raise ReleaseFailed("The blue_green strategy needs the Service manifest (it switches its selector).", {})

    def watcher(self, color: str) -> RolloutWatcher:
        """The watcher of one colour's Deployment, with the release's gates."""
        return RolloutWatcher(self.api, self.namespace, colored(self.p["deployment"], color), self.p,
                              clock=self.clock, sleep=self.sleep)

    def active_color(self) -> str | None:
        service = self.api.get_service(self.namespace, self.p["service"]["metadata"]["name"])
        return ((service or {}).get("spec", {}).get("selector") or {}).get(COLOR_LABEL)

    def run(self, check_mode: bool = False) -> dict[str, Any]:
        active = self.active_color()
        target = COLORS[1] if active == COLORS[0] else COLORS[0]
        desired = colored(self.p["deployment"], active or target)
        result: dict[str, Any] = {"strategy": "blue_green", "image": image_of(desired), "version": self.p["version"],
                                  "active_color": active, "target_color": target}
        if active is not None:
            live = self.api.get_deployment(self.namespace, desired["metadata"]["name"])
            if live is not None:
                result["previous_image"] = image_of(live)
                dry = self.api.apply_dry_run(desired)
                if dry["metadata"]["generation"] == live["metadata"]["generation"] \
                        and self.watcher(active).state().state == "healthy":
                    return {**result, "changed": False, "verdict": {"state": "healthy"}}
        if check_mode:
            return {**result, "changed": True, "verdict": {"state": "would-release"}}

        entry = ledger_entry(self.p["actor"], result["image"], "blue_green", result.get("previous_image"),
                             self.p["version"], color=target, previous_color=active, **release_notes(self.p))
        body = colored(self.p["deployment"], target)
        watcher = self.watcher(target)
        # Full size again, also when an earlier failure scaled it to zero; from now on a later generation of this
        # colour's Deployment is another hand's change.
        watcher.expect(self.api.apply("Deployment", body))
        watcher.smoke_service = self.api.apply("Service", preview(self.p["service"], target))["metadata"]["name"]
        watcher.report(f"{target} takes {result['image']} at full size; the Service selected "
                       f"{active or 'no colour'} when this release began; the gates ask {target} through "
                       f"{watcher.smoke_service}")
        verdict = watcher.judge()
        if verdict.state == "healthy":  # healthy as judged, and still what this run applied, and traffic where it was
            verdict = watcher.changed() or self._switched_by_another(active) or verdict
        entry["verdict_seconds"] = verdict.detail.get("seconds")
        result["verdict"] = verdict.as_dict()
        if verdict.gate == CHANGED_DURING_RELEASE:  # another hand owns the colours now: neither fight nor claim it
            failure = (f"Release {self.p['version']} ({result['image']}) failed gate {verdict.gate} on {target}: "
                       f"{'; '.join(verdict.evidence)}.{self._traffic()}")
            entry.update(finished=utcnow(), verdict="aborted", gate=verdict.gate, evidence=verdict.evidence)
            try:
                self.api.record(self.namespace, self.name, entry)
            except LockLost as lost:  # that hand took the lock from this run
                raise ReleaseFailed(f"{failure} This release stopped: it switched and scaled nothing and recorded "
                                    f"nothing. {lost}", {**result, "changed": True}) from lost
            raise ReleaseFailed(f"{failure} This release stopped: it switched and scaled nothing and recorded no "
                                "success.", {**result, "changed": True, "ledger_entry": entry})
        if verdict.state != "healthy":
            self.api.scale(self.namespace, body["metadata"]["name"], 0)
            entry.update(finished=utcnow(), verdict="failed", gate=verdict.gate, evidence=verdict.evidence)
            self.api.record(self.namespace, self.name, entry)
            raise ReleaseFailed(f"Release {self.p['version']} ({result['image']}) failed gate {verdict.gate} on "
                                f"{target}: {'; '.join(verdict.evidence)}. This release did not switch the Service "
                                f"and scaled {target} to zero.{self._traffic()}",
                                {**result, "changed": True, "ledger_entry": entry})
        switch_start, switched_at = self.clock(), self.wall()
        self.api.apply("Service", routed(self.p["service"], target))
        result["switch_seconds"] = round(self.clock() - switch_start, 3)
        watcher.report(f"the Service now routes to {target}")
        prometheus = watcher.prometheus_target() if self.p.get("judge") and active is not None else None
        if prometheus is not None:
            judged, result["analysis"] = self._analyse_after_switch(watcher, active, verdict, prometheus, switched_at)
            entry["analysis"] = result["analysis"]
            if judged.state != "healthy":
                self.api.apply("Service", routed(self.p["service"], active))
                self.api.scale(self.namespace, body["metadata"]["name"], 0)
                entry.update(finished=utcnow(), verdict="rolled_back", gate=judged.gate, evidence=judged.evidence)
                self.api.record(self.namespace, self.name, entry)
                raise ReleaseFailed(
                    f"Release {self.p['version']} ({result['image']}) failed gate {judged.gate} on {target} after "
                    f"the switch: {'; '.join(judged.evidence)}. The Service was switched back to {active} and "
                    f"{target} scaled to zero.{self._traffic()}",
                    {**result, "changed": True, "rolled_back": True, "ledger_entry": entry})
        entry.update(finished=utcnow(), verdict="succeeded", revision=verdict.detail.get("revision"))
        self.api.record(self.namespace, self.name, entry)
        return {**result, "changed": True, "active_color": target, "previous_color": active, "ledger_entry": entry}

    def _analyse_after_switch(self, watcher: RolloutWatcher, active: str, verdict: Verdict, prometheus: Target,
                              switched_at: float) -> tuple[Verdict, dict]:
        """The new colour judged under the traffic it now takes, against the colour that served it before the
        switch (its last max_analysis seconds, read over a range): the judge, the rollout and the metric gates
        looked at throughout; a failure switches back at once (the previous colour still runs at full size)."""
        judge, prom = self.p["judge"], self.p.get("prometheus") or {}
        before = self.watcher(active).state()
        analysis = Analysis(prometheus, judge, pod_selector(self.namespace, verdict.detail.get("template_hash")),
                            pod_selector(self.namespace, before.detail.get("template_hash")))
        analysis.history("baseline", switched_at, float(judge["max_analysis"]))
        watcher.report(f"{watcher.name}: analysing the traffic it takes against {active}'s before the switch (a look "
                       f"every {float(judge.get('interval') or 10):g}s, at most {float(judge['max_analysis']):g}s)")
        return analyse(analysis, lambda: [watcher.state()], prom.get("queries") or [],
                       float(prom.get("no_data_timeout") or 0), 0.0, self.clock, self.sleep, watcher.report)

    def _switched_by_another(self, active: str | None) -> Verdict | None:
        """A failed verdict when the Service no longer selects the colour it selected when this release started."""
        now = self.active_color()
        if now == active:
            return None
        return Verdict("failed", CHANGED_DURING_RELEASE, [
            f"service {self.p['service']['metadata']['name']} was switched during the release by another hand: it "
            f"selects {now or 'no colour'}, not {active or 'no colour'} as when this release started"])

    def _traffic(self) -> str:
        """Where traffic is, as read back now from the Service and its EndpointSlices."""
        return routing(self.api, self.namespace, self.p["service"]["metadata"]["name"])

    def switch_back(self, actor: str, check_mode: bool = False, pre_empts: str | None = None) -> dict[str, Any]:
        """Route the Service back to the other colour, if that colour is there and healthy."""
        active = self.active_color()
        if active is None:
            raise ReleaseFailed(f"Cannot switch back: the Service of {self.namespace}/{self.name} selects no colour.",
                                {})
        other = COLORS[1] if active == COLORS[0] else COLORS[0]
        watcher = self.watcher(other)
        deployment = self.api.get_deployment(self.namespace, f"{self.name}-{other}")
        verdict = watcher.state() if deployment else None
        if deployment is None or verdict.state != "healthy" or not deployment["spec"].get("replicas"):
            why = "does not exist" if deployment is None else "is not running healthy at full size"
            raise ReleaseFailed(f"Cannot switch back to {other}: {self.name}-{other} {why} (a release that failed "
                                f"there is scaled to zero). Nothing was changed.{self._traffic()} To restore an "
                                "earlier version, roll back to it by version (rollback.yml -e "
                                "app_release_rollback_to_version=<version>): it is released again to the idle colour "
                                "through the gates.", {"active_color": active})
        result = {"changed": True, "from_color": active, "to_color": other, "target_image": image_of(deployment),
                  "from_image": image_of(self.api.get_deployment(self.namespace, f"{self.name}-{active}"))}
        refuse_past_a_contract(self.api.ledger(self.namespace, self.name), result["target_image"], "Switching back")
        if check_mode:
            return {**result, "verdict": {"state": "would-switch-back"}}
        start = self.clock()
        self.api.apply("Service", routed(self.p["service"], other))
        result["switch_seconds"] = round(self.clock() - start, 3)
        self.api.record(self.namespace, self.name, ledger_entry(
            actor, result["target_image"], "manual-rollback", result["from_image"], finished=utcnow(),
            verdict="succeeded", color=other, previous_color=active, **ledger_notes(pre_empts)))
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
    after the last step the stable Deployment is updated in place and the canary removed.

    With a `judge` (and a Prometheus), each step runs a baseline of the live version at the canary's size beside it
    and the analysis (colors_release_analysis) decides the step: rollouts, threshold gates and the judge looked at
    throughout the bake; its record goes into the step, the ledger and the job summary."""

    def __init__(self, api: ClusterApi, params: dict, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.api, self.p, self.clock, self.sleep = api, params, clock, sleep
        self.namespace = params["namespace"]
        self.name = params["deployment"]["metadata"]["name"]
        self.stable = RollingRelease(api, params, clock=clock, sleep=sleep)
        self.baseline: str | None = None  # the baseline Deployment the judge compared with, once one runs

    def run(self, check_mode: bool = False) -> dict[str, Any]:
        desired = self.p["deployment"]
        total = int(desired["spec"].get("replicas", 1))
        live = self.api.get_deployment(self.namespace, self.name)
        if live is None:  # nothing to compare a canary with: the first release goes out rolling
            return self.stable.run(check_mode=check_mode)
        dry = self.api.apply_dry_run(desired)
        result: dict[str, Any] = {"strategy": "canary", "image": image_of(desired), "version": self.p["version"],
                                  "previous_image": image_of(live), "steps": []}
        if dry["metadata"]["generation"] == live["metadata"]["generation"]:
            return {**result, "changed": False, "verdict": {"state": "healthy"}}
        if check_mode:
            return {**result, "changed": True, "verdict": {"state": "would-release"}}
        entry = ledger_entry(self.p["actor"], result["image"], "canary", result["previous_image"], self.p["version"],
                             **release_notes(self.p))
        for step in self.p["canary_steps"]:
            if step["percent"] >= 100:
                break
            canary = canary_of(desired, step["canary"])
            self.api.apply("Deployment", canary)
            self.api.scale(self.namespace, self.name, step["stable"])
            watcher = RolloutWatcher(self.api, self.namespace, canary, self.p, clock=self.clock, sleep=self.sleep)
            watcher.report(f"canary step {step['percent']}%: {step['canary']} canary, {step['stable']} stable")
            target = watcher.prometheus_target() if self.p.get("judge") else None
            if target is not None:
                verdict, record = self._analyse(watcher, live, step, target)
                result["steps"].append({**step, "state": verdict.state, "judge": record})
            else:
                verdict = watcher.judge(pause=self.p.get("canary_pause", 0))
                result["steps"].append({**step, "state": verdict.state})
            if verdict.state != "healthy":
                self._abort(result, entry, step, verdict, total)
        self._remove_baseline()
        self.api.scale(self.namespace, self.name, total)
        self.stable.watcher.report(f"every canary step passed: promoting {result['image']} to {self.name}")
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

    def _analyse(self, watcher: RolloutWatcher, live: dict, step: dict, target: Target) -> tuple[Verdict, dict]:
        """The step judged: a baseline of the live version at the canary's size beside it, both rolled out, the
        smoke check, then the analysis (colors_release_analysis) until it decides."""
        baseline = baseline_of(live, step["canary"], TRACK_LABEL)
        self.api.apply("Deployment", baseline)
        self.baseline = baseline["metadata"]["name"]
        beside = RolloutWatcher(self.api, self.namespace, baseline, self.p, clock=self.clock, sleep=self.sleep)
        watcher.report(f"baseline {self.baseline}: {step['canary']} pods of {image_of(live)} beside the canary")
        hashes = {}
        for side, rollout in (("canary", watcher), ("baseline", beside)):
            verdict = rollout.wait_for_rollout()
            if verdict.state != "healthy":
                return verdict, {"state": "aborted", "looks": 0, "reason": f"the {side} did not roll out"}
            hashes[side] = verdict.detail.get("template_hash")
        smoke = watcher.smoke_gate()
        if smoke.state == "failed":
            return smoke, {"state": "aborted", "looks": 0, "reason": "smoke check"}
        prom = self.p.get("prometheus") or {}
        analysis = Analysis(target, self.p["judge"], pod_selector(self.namespace, hashes["canary"]),
                            pod_selector(self.namespace, hashes["baseline"]))
        judge = self.p["judge"]
        watcher.report(f"{watcher.name}: healthy; analysing beside {self.baseline} (a look every "
                       f"{float(judge.get('interval') or 10):g}s, at least {self.p.get('canary_pause', 0):g}s, "
                       f"at most {float(judge['max_analysis']):g}s)")
        return analyse(analysis, lambda: [watcher.state(), beside.state()], prom.get("queries") or [],
                       float(prom.get("no_data_timeout") or 0), float(self.p.get("canary_pause") or 0),
                       self.clock, self.sleep, watcher.report)

    def _remove_baseline(self) -> None:
        if self.baseline:
            self.api.scale(self.namespace, self.baseline, 0)

    def _abort(self, result, entry, step, verdict, total) -> NoReturn:
        """Remove the canary (and its baseline), put the stable Deployment back to full size, record and raise."""
        start = self.clock()
        self._remove_baseline()
        self.api.scale(self.namespace, f"{self.name}-canary", 0)
        self.api.scale(self.namespace, self.name, total)
        restored = self.stable.watcher.wait_for_rollout()
        entry.update(finished=utcnow(), verdict="rolled_back", gate=verdict.gate, evidence=verdict.evidence,
                     steps=result["steps"], rollback_target={"image": result["previous_image"],
                                                             "state": restored.state,
                                                             "seconds": round(self.clock() - start, 2)})
        self.api.record(self.namespace, self.name, entry)
        raise ReleaseFailed(
            f"Canary {self.p['version']} ({result['image']}) aborted at {step['percent']}% "
            f"({step['canary']} of {total} pods): gate {verdict.gate} failed: {'; '.join(verdict.evidence)}. "
            f"Canary removed; {result['previous_image']} is back at {total} replicas ({restored.state})."
            f"{self.stable._routing()}",
            {**result, "changed": True, "rolled_back": True, "ledger_entry": entry})
