"""Unit tests of the blue-green and canary strategies and of switching back (plugins/module_utils/
colors_release_engine.py), against Cluster: an in-memory API server and Deployment controller that holds several
Deployments, their ReplicaSets and pods, and a Service whose endpoints are the pods its selector matches."""

from __future__ import annotations

import copy
import json

import pytest
from helpers import load_plugin

engine = load_plugin("plugins/module_utils/colors_release_engine.py")
REV = "deployment.kubernetes.io/revision"
NAME = {"app.kubernetes.io/name": "colors"}


def manifest(image: str, replicas: int = 2) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "colors", "namespace": "colors"},
            "spec": {"replicas": replicas, "progressDeadlineSeconds": 30, "selector": {"matchLabels": dict(NAME)},
                     "template": {"metadata": {"labels": dict(NAME)},
                                  "spec": {"containers": [{"name": "colors", "image": image}]}}}}


SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "colors", "namespace": "colors"},
           "spec": {"selector": dict(NAME)}}


def _matches(labels: dict, selector: str | dict) -> bool:
    wanted = selector if isinstance(selector, dict) else dict(p.split("=", 1) for p in selector.split(",") if p)
    return all(labels.get(k) == v for k, v in wanted.items())


def _image(template: dict) -> str:
    return template["spec"]["containers"][0]["image"]


class Cluster:
    """Each pod template a Deployment gets becomes a new revision (a ReplicaSet) whose pods - as many as the
    Deployment's replicas - turn ready, or wait with the reason scripted for their image."""

    def __init__(self, outcomes: dict[str, str] | None = None):
        self.outcomes = outcomes or {}
        self.deployments: dict[str, dict] = {}
        self.rs_list: list[dict] = []
        self.services: dict[str, dict] = {}
        self.proxied: list[tuple[str, str, str]] = []  # (service, port, path) of each GET through the API server
        self.answers: dict[str, int] = {}  # image -> the HTTP status its pods answer (absent: 200)
        self.entries: list[dict] = []
        self.scaled: list[tuple[str, int]] = []

    # --- the controller ---
    def _settle(self, dep: dict) -> None:
        name = dep["metadata"]["name"]
        revision = int(dep["metadata"]["annotations"][REV])
        rs = next(r for r in self.rs_list if r["owner"] == name and int(r["metadata"]["annotations"][REV]) == revision)
        replicas = dep["spec"]["replicas"]
        reason = self.outcomes.get(_image(dep["spec"]["template"])) if replicas else None
        state = {"waiting": {"reason": reason}} if reason else {"running": {}}
        labels = {**dep["spec"]["template"]["metadata"]["labels"], "pod-template-hash": rs["metadata"]["name"]}
        dep["pods"] = [{"metadata": {"name": f"{rs['metadata']['name']}-{i}", "labels": labels},
                        "spec": {"containers": [{"name": "colors", "image": _image(dep["spec"]["template"])}]},
                        "status": {"containerStatuses": [{"name": "colors", "state": state}]}}
                       for i in range(replicas)]
        ready = 0 if reason else replicas
        dep["status"] = {"observedGeneration": dep["metadata"]["generation"], "replicas": replicas,
                         "updatedReplicas": replicas, "readyReplicas": ready, "availableReplicas": ready}

    def _roll(self, dep: dict, template: dict) -> None:
        name = dep["metadata"]["name"]
        revision = max([int(r["metadata"]["annotations"][REV]) for r in self.rs_list if r["owner"] == name] or [0]) + 1
        rs = next((r for r in self.rs_list if r["owner"] == name and _image(r["spec"]["template"]) == _image(template)),
                  None)
        if rs is None:
            rs = {"owner": name, "metadata": {"name": f"{name}-{len(self.rs_list)}", "labels": {},
                                              "ownerReferences": [{"kind": "Deployment", "name": name}]},
                  "spec": {"template": copy.deepcopy(template)}}
            self.rs_list.append(rs)
        rs["metadata"]["annotations"] = {REV: str(revision)}
        rs["metadata"]["labels"] = {**template["metadata"]["labels"], "pod-template-hash": rs["metadata"]["name"]}
        dep["metadata"]["annotations"] = {REV: str(revision)}
        dep["spec"]["template"] = copy.deepcopy(template)

    def _public(self, dep: dict | None) -> dict | None:
        return None if dep is None else copy.deepcopy({k: v for k, v in dep.items() if k != "pods"})

    # --- ClusterApi ---
    def get_deployment(self, namespace, name):
        return self._public(self.deployments.get(name))

    def _change(self, body: dict, dry: bool) -> dict:
        name = body["metadata"]["name"]
        live = self.deployments.get(name)
        dep = copy.deepcopy(live) if live else {**copy.deepcopy(body), "metadata": {**body["metadata"],
                                                                                    "generation": 0}}
        changed = live is None or body["spec"]["template"] != live["spec"]["template"] \
            or body["spec"].get("replicas") != live["spec"]["replicas"]
        if changed:
            dep["metadata"]["generation"] += 1
            dep["spec"]["replicas"] = body["spec"].get("replicas", 1)
            if live is None or body["spec"]["template"] != live["spec"]["template"]:
                self._roll(dep, body["spec"]["template"]) if not dry else None
        if not dry:
            self.deployments[name] = dep
            self._settle(dep)
        return self._public(dep)

    @property
    def service(self) -> dict | None:
        return self.services.get(SERVICE["metadata"]["name"])

    def apply(self, kind, body):
        if kind == "Service":
            self.services[body["metadata"]["name"]] = copy.deepcopy(body)
            return copy.deepcopy(body)
        return self._change(body, dry=False)

    def apply_dry_run(self, body):
        return self._change(body, dry=True)

    def get_service(self, namespace, name):
        return copy.deepcopy(self.services.get(name))

    def endpoint_pods(self, namespace, service):
        selector = self.services[service]["spec"]["selector"]
        return sorted(p["metadata"]["name"] for d in self.deployments.values() for p in d["pods"]
                      if _matches(p["metadata"]["labels"], selector))

    def scale(self, namespace, name, replicas):
        self.scaled.append((name, replicas))
        dep = self.deployments[name]
        if dep["spec"]["replicas"] != replicas:
            dep["spec"]["replicas"] = replicas
            dep["metadata"]["generation"] += 1
        self._settle(dep)

    def replace_template(self, namespace, name, template):
        dep = self.deployments[name]
        dep["metadata"]["generation"] += 1
        self._roll(dep, template)
        self._settle(dep)
        return self._public(dep)

    def replicasets(self, namespace, selector):
        return [copy.deepcopy({k: v for k, v in r.items() if k != "owner"}) for r in self.rs_list
                if _matches(r["metadata"]["labels"], selector)]

    def pods(self, namespace, selector):
        return [copy.deepcopy(p) for d in self.deployments.values() for p in d["pods"]
                if _matches(p["metadata"]["labels"], selector)]

    def ledger(self, namespace, release):
        return list(self.entries)

    def record(self, namespace, release, entry):
        self.entries.append(copy.deepcopy(entry))

    def proxy_get(self, namespace, service, port, path):
        """A pod behind the Service answers: 200, or the status scripted for its image in `answers`; no pod - the
        API server's own 503 (a Kubernetes Status)."""
        self.proxied.append((service, port, path))
        pods = self.endpoint_pods(namespace, service)
        if not pods:
            return 503, b'{"kind":"Status","message":"no endpoints available for service"}'
        images = {_image(d["spec"]["template"]) for d in self.deployments.values()
                  if any(p["metadata"]["name"] in pods for p in d["pods"])}
        return max((self.answers.get(i, 200) for i in images), default=200), b""

    # --- what the tests read ---
    def image(self, name: str) -> str:
        return _image(self.deployments[name]["spec"]["template"])

    def replicas(self, name: str) -> int:
        return self.deployments[name]["spec"]["replicas"]

    def routed_color(self) -> str | None:
        return self.service["spec"]["selector"].get(engine.COLOR_LABEL)


def params(image: str, **extra) -> dict:
    return {"namespace": "colors", "deployment": manifest(image, extra.pop("replicas", 2)), "service": SERVICE,
            "version": image.rsplit(":", 1)[1], "actor": "tester", "auto_rollback": True, "poll_interval": 0,
            **extra}


def blue_green(cluster: Cluster, image: str, check_mode: bool = False) -> dict:
    return engine.BlueGreenRelease(cluster, params(image), sleep=lambda s: None).run(check_mode=check_mode)


def switch_back(cluster: Cluster, check_mode: bool = False) -> dict:
    return engine.BlueGreenRelease(cluster, params("colors:0.0.0"), sleep=lambda s: None).switch_back(
        "on-call", check_mode=check_mode)


# --- blue-green ----------------------------------------------------------------------------------------------------

def test_the_first_blue_green_release_goes_to_blue_and_the_service_follows_once_healthy():
    cluster = Cluster()
    result = blue_green(cluster, "colors:1.0.0")
    assert result["changed"] and result["active_color"] == "blue" and result["previous_color"] is None
    assert cluster.routed_color() == "blue" and cluster.image("colors-blue") == "colors:1.0.0"
    assert cluster.endpoint_pods("colors", "colors") == [p["metadata"]["name"]
                                                         for p in cluster.deployments["colors-blue"]["pods"]]
    assert [(e["verdict"], e["color"]) for e in cluster.entries] == [("succeeded", "blue")]


def test_the_next_release_goes_to_the_idle_colour_and_the_previous_one_keeps_running_at_full_size():
    cluster = Cluster()
    blue_green(cluster, "colors:1.0.0")
    result = blue_green(cluster, "colors:1.1.0")
    assert (result["active_color"], result["previous_color"], result["previous_image"]) == ("green", "blue",
                                                                                            "colors:1.0.0")
    assert cluster.routed_color() == "green" and cluster.image("colors-green") == "colors:1.1.0"
    assert cluster.replicas("colors-blue") == 2 and cluster.image("colors-blue") == "colors:1.0.0"


def test_the_same_blue_green_release_again_changes_nothing():
    cluster = Cluster()
    blue_green(cluster, "colors:1.0.0")
    result = blue_green(cluster, "colors:1.0.0")
    assert result["changed"] is False and len(cluster.entries) == 1


def test_a_failed_blue_green_release_never_receives_traffic_and_is_scaled_to_zero():
    cluster = Cluster({"colors:1.1.0": "ImagePullBackOff"})
    blue_green(cluster, "colors:1.0.0")
    with pytest.raises(engine.ReleaseFailed) as err:
        blue_green(cluster, "colors:1.1.0")
    assert "failed gate image-pull on green" in str(err.value)
    assert ("This release did not switch the Service and scaled green to zero. Read back now: service colors "
            "selects blue and routes to 2 pods (2 of colors:1.0.0).") in str(err.value)
    assert cluster.routed_color() == "blue" and cluster.replicas("colors-green") == 0
    assert cluster.entries[-1]["verdict"] == "failed" and cluster.entries[-1]["gate"] == "image-pull"


def test_a_blue_green_release_in_check_mode_routes_nothing():
    cluster = Cluster()
    blue_green(cluster, "colors:1.0.0")
    result = blue_green(cluster, "colors:1.1.0", check_mode=True)
    assert result["verdict"] == {"state": "would-release"} and "colors-green" not in cluster.deployments
    assert cluster.routed_color() == "blue" and len(cluster.entries) == 1


def test_a_blue_green_release_needs_the_service():
    with pytest.raises(engine.ReleaseFailed, match="needs the Service manifest"):
        engine.BlueGreenRelease(Cluster(), {**params("colors:1.0.0"), "service": None})


def _blue_green_while(cluster: Cluster, image: str, meanwhile) -> dict:
    """A blue-green release during whose watch `meanwhile(cluster)` runs once (another hand at work)."""
    calls = []

    def sleep(_seconds):
        if not calls:
            calls.append(meanwhile(cluster))

    return engine.BlueGreenRelease(cluster, params(image), sleep=sleep).run()


def test_a_blue_green_release_whose_colour_another_hand_changes_meanwhile_is_aborted_where_traffic_was():
    """Another hand rolls the colour being released to something else: the release neither claims the rollout it
    reads (no longer its own) nor switches traffic to it, nor scales down what that hand put there."""
    cluster = Cluster({"colors:2.0.0": "ContainerCreating"})  # never ready, nothing fatal: it waits
    blue_green(cluster, "colors:1.0.0")

    def theirs(c):
        template = engine.colored(manifest("colors:2.0.1"), "green")["spec"]["template"]
        return c.replace_template("colors", "colors-green", template)["metadata"]["generation"]

    with pytest.raises(engine.ReleaseFailed) as err:
        _blue_green_while(cluster, "colors:2.0.0", theirs)
    message = str(err.value)
    assert "Release 2.0.0 (colors:2.0.0) failed gate changed-during-release on green" in message
    assert "deployment colors-green was changed during the release by another hand" in message
    assert "its image is now colors:2.0.1 (this release applied colors:2.0.0)" in message
    assert "Read back now: service colors selects blue and routes to 2 pods (2 of colors:1.0.0)." in message
    assert "switched and scaled nothing and recorded no success" in message
    assert cluster.routed_color() == "blue" and cluster.image("colors-green") == "colors:2.0.1"
    assert ("colors-green", 0) not in cluster.scaled
    assert cluster.entries[-1]["verdict"] == "aborted" and cluster.entries[-1]["gate"] == "changed-during-release"


def test_a_blue_green_release_whose_service_another_hand_switches_meanwhile_is_aborted_naming_where_traffic_is():
    """Someone routes the Service by hand while the release judges its colour: the release, which would switch from
    the colour it found, switches nothing and says where traffic is now, read back from the Service."""
    cluster = Cluster()
    blue_green(cluster, "colors:1.0.0")
    blue_green(cluster, "colors:1.1.0")  # green serves, blue idles on 1.0.0
    with pytest.raises(engine.ReleaseFailed) as err:
        _blue_green_while(cluster, "colors:1.2.0", lambda c: c.apply("Service", engine.routed(SERVICE, "blue")))
    message = str(err.value)
    assert "Release 1.2.0 (colors:1.2.0) failed gate changed-during-release on blue" in message
    assert "service colors was switched during the release by another hand: it selects blue, not green as when this " \
           "release started" in message
    assert "Read back now: service colors selects blue and routes to 2 pods (2 of colors:1.2.0)." in message
    assert cluster.routed_color() == "blue"  # as that hand left it: not switched again, not fought
    assert [e["verdict"] for e in cluster.entries] == ["succeeded", "succeeded", "aborted"]


def test_a_blue_green_release_whose_prometheus_is_down_is_never_switched_to(monkeypatch):
    """Metrics nobody could read never promote: the Service stays on the colour that served."""
    watch = load_plugin("plugins/module_utils/colors_release_watch.py")
    monkeypatch.setattr(watch, "prometheus_query", lambda url, query, timeout=10.0: {
        "status": "error", "errorType": watch.UNREACHABLE, "error": f"Prometheus at {url} unreachable: refused"})
    cluster = Cluster()
    blue_green(cluster, "colors:1.0.0")
    gate = {"name": "error-ratio", "query": "sum(rate(x{$pods}[2m]))", "max": 0.02}
    now = [0.0]
    with pytest.raises(engine.ReleaseFailed) as err:
        engine.BlueGreenRelease(cluster, params("colors:1.1.0", prometheus={
            "url": "http://p", "queries": [gate], "no_data_timeout": 5}), clock=lambda: now[0],
            sleep=lambda s: now.__setitem__(0, now[0] + s)).run()
    assert "failed gate prometheus-unreachable on green" in str(err.value)
    assert ("This release did not switch the Service and scaled green to zero. Read back now: service colors "
            "selects blue and routes to 2 pods (2 of colors:1.0.0).") in str(err.value)
    assert cluster.routed_color() == "blue" and cluster.replicas("colors-green") == 0


# --- switching back ------------------------------------------------------------------------------------------------

def test_switching_back_routes_the_service_to_the_other_colour_and_records_it():
    cluster = Cluster()
    blue_green(cluster, "colors:1.0.0")
    blue_green(cluster, "colors:1.1.0")
    result = switch_back(cluster)
    assert (result["from_color"], result["to_color"], result["target_image"]) == ("green", "blue", "colors:1.0.0")
    assert cluster.routed_color() == "blue"
    assert (cluster.entries[-1]["strategy"], cluster.entries[-1]["actor"], cluster.entries[-1]["color"]) == (
        "manual-rollback", "on-call", "blue")


def test_switching_back_past_a_contract_migration_is_refused_naming_it():
    cluster = Cluster()
    blue_green(cluster, "colors:1.0.0")
    engine.BlueGreenRelease(cluster, params("colors:1.1.0", contract_migrations=["0004_contract_x.sql"]),
                            sleep=lambda s: None).run()
    assert cluster.entries[-1]["contract_migrations"] == ["0004_contract_x.sql"]
    with pytest.raises(engine.ReleaseFailed, match=r"Switching back to colors:1\.0\.0 refused: release 1\.1\.0 "
                                                   r"\(colors:1\.1\.0\) ran migration 0004_contract_x\.sql"):
        switch_back(cluster)
    assert cluster.routed_color() == "green" and len(cluster.entries) == 2


def test_switching_back_in_check_mode_changes_nothing():
    cluster = Cluster()
    blue_green(cluster, "colors:1.0.0")
    blue_green(cluster, "colors:1.1.0")
    assert switch_back(cluster, check_mode=True)["verdict"] == {"state": "would-switch-back"}
    assert cluster.routed_color() == "green" and len(cluster.entries) == 2


def test_switching_back_to_a_colour_that_is_not_running_is_refused_naming_it():
    cluster = Cluster({"colors:1.1.0": "CrashLoopBackOff"})
    blue_green(cluster, "colors:1.0.0")
    with pytest.raises(engine.ReleaseFailed) as refused:
        with pytest.raises(engine.ReleaseFailed):
            blue_green(cluster, "colors:1.1.0")  # green failed: scaled to zero
        switch_back(cluster)
    # It says what it read, that nothing changed, and the way out.
    assert refused.value.args[0].startswith("Cannot switch back to green: colors-green is not running healthy at full "
                                            "size (a release that failed there is scaled to zero). Nothing was "
                                            "changed. Read back now: service colors selects blue and routes to 2 pods "
                                            "(2 of colors:1.0.0). To restore an earlier version, roll back to "
                                            "it by version (rollback.yml -e app_release_rollback_to_version=<version>)")
    assert cluster.routed_color() == "blue"


def test_switching_back_without_a_colour_is_refused():
    cluster = Cluster()
    cluster.apply("Service", SERVICE)
    with pytest.raises(engine.ReleaseFailed, match="selects no colour"):
        switch_back(cluster)


# --- canary --------------------------------------------------------------------------------------------------------

STEPS = [{"percent": 25, "canary": 1, "stable": 3}, {"percent": 50, "canary": 2, "stable": 2},
         {"percent": 100, "canary": 4, "stable": 0}]


def canary(cluster: Cluster, image: str, check_mode: bool = False) -> dict:
    p = params(image, replicas=4, canary_steps=STEPS, canary_pause=0)
    p.pop("service")
    return engine.CanaryRelease(cluster, p, sleep=lambda s: None).run(check_mode=check_mode)


def test_the_first_canary_release_goes_out_rolling():
    cluster = Cluster()
    result = canary(cluster, "colors:1.0.0")
    assert result["verdict"]["state"] == "healthy" and "colors-canary" not in cluster.deployments
    assert cluster.entries[-1]["strategy"] == "rolling"


def test_a_canary_that_passes_every_step_is_promoted_and_removed():
    cluster = Cluster()
    canary(cluster, "colors:1.0.0")
    result = canary(cluster, "colors:1.1.0")
    assert [(s["percent"], s["state"]) for s in result["steps"]] == [(25, "healthy"), (50, "healthy")]
    # Step by step: canary pods up, the stable Deployment down by as many; then promoted, and the canary gone.
    assert cluster.scaled == [("colors", 3), ("colors", 2), ("colors", 4), ("colors-canary", 0)]
    assert cluster.image("colors") == "colors:1.1.0" and cluster.replicas("colors") == 4
    assert cluster.replicas("colors-canary") == 0
    assert (cluster.entries[-1]["strategy"], cluster.entries[-1]["verdict"]) == ("canary", "succeeded")
    assert len(cluster.entries[-1]["steps"]) == 2


def test_a_failing_canary_is_aborted_at_its_first_step_and_the_stable_release_is_back_at_full_size():
    cluster = Cluster({"colors:1.1.0": "CrashLoopBackOff"})
    canary(cluster, "colors:1.0.0")
    with pytest.raises(engine.ReleaseFailed) as err:
        canary(cluster, "colors:1.1.0")
    message = str(err.value)
    assert "Canary 1.1.0 (colors:1.1.0) aborted at 25% (1 of 4 pods): gate pod-crashloop failed" in message
    assert "Canary removed; colors:1.0.0 is back at 4 replicas (healthy)." in message
    assert cluster.replicas("colors-canary") == 0 and cluster.replicas("colors") == 4
    assert cluster.image("colors") == "colors:1.0.0"
    assert cluster.entries[-1]["verdict"] == "rolled_back" and cluster.entries[-1]["rollback_target"]["state"] == \
        "healthy"


def test_a_canary_in_check_mode_changes_nothing():
    cluster = Cluster()
    canary(cluster, "colors:1.0.0")
    result = canary(cluster, "colors:1.1.0", check_mode=True)
    assert result["verdict"] == {"state": "would-release"} and "colors-canary" not in cluster.deployments
    assert cluster.image("colors") == "colors:1.0.0"


# --- progress, as the release goes ----------------------------------------------------------------------------------

def test_each_strategy_reports_its_steps_the_rollout_and_the_gates_as_it_goes():
    said: list[str] = []
    cluster = Cluster()
    canary(cluster, "colors:1.0.0")
    p = params("colors:1.1.0", replicas=4, canary_steps=STEPS, canary_pause=0, _progress=said.append)
    p.pop("service")
    engine.CanaryRelease(cluster, p, sleep=lambda s: None).run()
    assert said[0] == "canary step 25%: 1 canary, 3 stable"
    assert "colors-canary: rollout healthy after 0s" in said and "colors-canary: gates healthy" in said
    assert "canary step 50%: 2 canary, 2 stable" in said
    assert any(line.startswith("every canary step passed: promoting colors:1.1.0") for line in said)
    said.clear()
    engine.BlueGreenRelease(cluster, params("colors:2.0.0", _progress=said.append), sleep=lambda s: None).run()
    assert said[0] == ("blue takes colors:2.0.0 at full size; the Service selected no colour when this release "
                       "began; the gates ask blue through colors-preview")
    assert said[-1] == "the Service now routes to blue"


def test_a_failed_gate_and_the_rollback_are_reported():
    said: list[str] = []
    cluster = Cluster({"colors:1.1.0": "ImagePullBackOff"})
    blue_green(cluster, "colors:1.0.0")
    with pytest.raises(engine.ReleaseFailed):
        engine.BlueGreenRelease(cluster, params("colors:1.1.0", _progress=said.append), sleep=lambda s: None).run()
    assert said[0] == ("green takes colors:1.1.0 at full size; the Service selected blue when this release began; "
                       "the gates ask green through colors-preview")
    assert "colors-green: rollout failed at gate image-pull after 0s" in said, said
    assert "the Service now routes to green" not in said


# --- gates through the API server --------------------------------------------------------------------------------

SMOKE_BY_PATH = {"http_smoke": {"path": "/", "port": "http", "expect_status": 200}}


def test_a_blue_green_release_judges_the_new_colour_through_its_preview_service_before_the_switch():
    cluster = Cluster()
    engine.BlueGreenRelease(cluster, params("colors:1.0.0", **SMOKE_BY_PATH), sleep=lambda s: None).run()
    engine.BlueGreenRelease(cluster, params("colors:1.1.0", **SMOKE_BY_PATH), sleep=lambda s: None).run()
    preview = cluster.services["colors-preview"]
    assert preview["spec"]["selector"][engine.COLOR_LABEL] == "green" and preview["spec"]["type"] == "ClusterIP"
    assert cluster.proxied == [("colors-preview", "http", "/")] * 2
    assert cluster.routed_color() == "green"


def test_a_new_colour_whose_smoke_check_fails_never_gets_traffic_and_the_message_says_where_it_was_asked():
    cluster = Cluster()
    engine.BlueGreenRelease(cluster, params("colors:1.0.0", **SMOKE_BY_PATH), sleep=lambda s: None).run()
    cluster.answers["colors:1.1.0"] = 500
    with pytest.raises(engine.ReleaseFailed) as failed:
        engine.BlueGreenRelease(cluster, params("colors:1.1.0", **SMOKE_BY_PATH), sleep=lambda s: None).run()
    assert "failed gate http-smoke on green: GET service colors/colors-preview:http (through the API server)/ " \
           "answered 500, expected 200" in str(failed.value)
    assert cluster.routed_color() == "blue" and cluster.replicas("colors-green") == 0


def test_a_preview_service_keeps_the_ports_but_no_node_port():
    service = {"metadata": {"name": "colors", "namespace": "colors"},
               "spec": {"type": "NodePort", "selector": dict(NAME),
                        "ports": [{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080}]}}
    body = engine.preview(service, "blue")
    assert body["metadata"]["name"] == "colors-preview" and body["spec"]["type"] == "ClusterIP"
    assert body["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]
    assert body["spec"]["selector"] == {**NAME, engine.COLOR_LABEL: "blue"}
    assert service["spec"]["ports"][0]["nodePort"] == 30080  # the release's own Service is not touched


def test_a_blue_green_release_that_restores_a_version_is_recorded_as_a_rollback_with_its_commit_time():
    """rollback.yml to a version releases it again (restores): the ledger says so, and the report counts it as a
    restoration; a release records when its commit was made."""
    cluster = Cluster()
    engine.BlueGreenRelease(cluster, params("colors:1.0.0", committed="2026-12-01T10:00:00Z"),
                            sleep=lambda s: None).run()
    assert cluster.entries[-1]["committed"] == "2026-12-01T10:00:00Z" and "rollback" not in cluster.entries[-1]
    blue_green(cluster, "colors:1.1.0")
    engine.BlueGreenRelease(cluster, params("colors:1.0.0", restores=True), sleep=lambda s: None).run()
    assert (cluster.entries[-1]["strategy"], cluster.entries[-1]["verdict"], cluster.entries[-1]["rollback"]) == (
        "blue_green", "succeeded", True)
    assert "committed" not in cluster.entries[-1]


# --- the canary judge ----------------------------------------------------------------------------------------------

analysis_mod = load_plugin("plugins/module_utils/colors_release_analysis.py")
BUCKET_BOUNDS = (0.01, 0.05, 0.1)
JUDGE = {"interval": 10, "max_analysis": 300, "alpha": 0.001, "pass_score": 95, "marginal_score": 75,
         "inconclusive": "abort", "metrics": [
             {"name": "error-ratio", "kind": "ratio", "bad": 'sum(requests{$pods,status=~"5.."})',
              "total": "sum(requests{$pods})", "tolerance": 0.005, "weight": 2, "min_sample": 200},
             {"name": "latency-p99", "kind": "quantile", "buckets": "sum by (le) (duration_bucket{$pods})",
              "quantile": 0.99, "tolerance": 0.02, "min_sample": 200}]}


class Traffic:
    """Prometheus as the judge reads it: each side's counters grow with the clock - `rate` requests/s, a share
    `errors` of them 5xx, `slow` of them beyond the last bound - and a threshold gate's query answers `gate`."""

    def __init__(self, rate=20.0, errors=None, slow=None, gate=None, canary="colors-canary", start=0.0):
        self.now, self.rate, self.canary = [start], rate, canary  # `canary`: what the canary side's selector names
        self.errors = {"canary": 0.002, "baseline": 0.002, **(errors or {})}
        self.slow = {"canary": 0.001, "baseline": 0.001, **(slow or {})}
        self.gate = gate or (lambda now: 0.0)
        self.queries: list[str] = []

    def clock(self) -> float:
        return self.now[0]

    def sleep(self, seconds: float) -> None:
        self.now[0] += seconds

    def _vector(self, query: str, now: float) -> list[tuple[dict, float]]:
        side = "canary" if self.canary in query else "baseline"
        total = int(self.rate * now)  # counters count whole requests
        if query.startswith("gate"):
            return [({}, self.gate(now))]
        if "duration_bucket" in query:
            fast = total * (1 - self.slow[side])
            vector = [({"le": "0.01"}, fast * 0.5), ({"le": "0.05"}, fast * 0.9), ({"le": "0.1"}, fast),
                      ({"le": "+Inf"}, total)]
        elif "5.." in query:
            vector = [({}, int(total * self.errors[side]))]
        else:
            vector = [({}, total)]
        return [(labels, value) for labels, value in vector if total]

    def answer(self, target, query: str, path: str = "/api/v1/query", **extra) -> dict:
        self.queries.append(query)
        if path.endswith("query_range"):
            start, end, step = float(extra["start"]), float(extra["end"]), float(extra["step"])
            series: dict[str, tuple[dict, list]] = {}
            for i in range(int((end - start) // step) + 1):
                for labels, value in self._vector(query, start + i * step):
                    series.setdefault(json.dumps(labels), (labels, []))[1].append([start + i * step, str(value)])
            return {"status": "success", "data": {"resultType": "matrix", "result": [
                {"metric": labels, "values": values} for labels, values in series.values()]}}
        vector = self._vector(query, self.now[0])
        return {"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": labels, "value": [self.now[0], str(value)]} for labels, value in vector]}}


def judged_canary(cluster: Cluster, image: str, traffic: Traffic, judge=None, gates=(), pause=30) -> dict:
    p = params(image, replicas=4, canary_steps=STEPS, canary_pause=pause, judge=judge or JUDGE,
               prometheus={"url": "http://prometheus", "queries": list(gates), "no_data_timeout": 120})
    p.pop("service")
    return engine.CanaryRelease(cluster, p, clock=traffic.clock, sleep=traffic.sleep).run()


def aborted_judged_canary(traffic: Traffic, cluster: Cluster | None = None, **extra) -> tuple[Cluster, str]:
    """colors:1.0.0 released, then colors:1.1.0 released as a judged canary, which the test expects aborted: the
    cluster and the abort's message."""
    cluster = cluster or Cluster()
    canary(cluster, "colors:1.0.0")
    with pytest.raises(engine.ReleaseFailed) as err:
        judged_canary(cluster, "colors:1.1.0", traffic, **extra)
    return cluster, str(err.value)


@pytest.fixture
def traffic(monkeypatch):
    traffic = Traffic()
    monkeypatch.setattr(analysis_mod, "prometheus_query", traffic.answer)
    return traffic


def test_a_judged_canary_runs_beside_a_baseline_of_the_live_version_and_is_promoted_when_no_worse(traffic):
    cluster = Cluster()
    canary(cluster, "colors:1.0.0")
    result = judged_canary(cluster, "colors:1.1.0", traffic)
    assert cluster.image("colors") == "colors:1.1.0" and cluster.replicas("colors") == 4
    # The baseline ran the live version at the canary's size, with its own pods; it is gone once the canary passed.
    assert cluster.image("colors-baseline") == "colors:1.0.0" and cluster.replicas("colors-baseline") == 0
    assert ("colors-baseline", 0) in cluster.scaled
    records = [step["judge"] for step in result["steps"]]
    assert [r["state"] for r in records] == ["passed", "passed"]
    first = records[0]
    assert first["seconds"] >= 30, "a step passes no sooner than its bake"
    ratio = next(m for m in first["metrics"] if m["metric"] == "error-ratio")
    assert ratio["outcome"] == "pass" and ratio["canary"]["total"] >= 200 and ratio["baseline"]["total"] >= 200
    # The series the report page draws: each side's value per window (no request yet at the first look; the second
    # only sets the counters).
    baseline = first["series"]["error-ratio"]["baseline"]
    assert len(baseline) == first["looks"] - 2 and 0.0015 <= sum(baseline) / len(baseline) <= 0.0025, baseline
    assert all(0.05 <= v <= 0.1 for v in first["series"]["latency-p99"]["canary"]), first["series"]
    # Each side read by its own pods: the canary's and the baseline's ReplicaSets.
    assert any('pod_template_hash="colors-canary' in q for q in traffic.queries)
    assert any('pod_template_hash="colors-baseline' in q for q in traffic.queries)
    assert cluster.entries[-1]["verdict"] == "succeeded" and cluster.entries[-1]["steps"][0]["judge"]["state"] == \
        "passed"


def test_a_canary_the_judge_finds_worse_is_aborted_at_once_with_its_statistics(traffic):
    traffic.errors["canary"] = 0.05
    cluster, message = aborted_judged_canary(traffic)
    assert "aborted at 25% (1 of 4 pods): gate judge failed: error-ratio: the canary is worse by" in message
    assert cluster.replicas("colors-canary") == 0 and cluster.replicas("colors-baseline") == 0
    assert cluster.replicas("colors") == 4 and cluster.image("colors") == "colors:1.0.0"
    entry = cluster.entries[-1]
    assert (entry["verdict"], entry["gate"]) == ("rolled_back", "judge")
    record = entry["steps"][0]["judge"]
    assert record["state"] == "failed" and record["seconds"] < 30, "a failure does not wait for the bake to end"
    ratio = next(m for m in record["metrics"] if m["metric"] == "error-ratio")
    assert ratio["outcome"] == "fail" and ratio["p"] < 0.001 and ratio["canary_ratio"] > ratio["baseline_ratio"]


GATE = {"name": "error-ratio", "query": "gate{$pods}", "max": 0.02}


def test_a_threshold_gate_looked_at_during_the_bake_aborts_the_moment_it_fails(traffic):
    traffic.gate = lambda now: 0.5 if now >= 20 else 0.0
    traffic.slow["canary"] = 0.2  # the judge waits for its look; the gate, past the minimum sample, does not
    cluster, message = aborted_judged_canary(traffic, gates=[GATE], pause=120)
    assert "gate prometheus:error-ratio failed: gate{" in message
    assert cluster.entries[-1]["steps"][0]["judge"]["seconds"] == 20


def test_a_threshold_gate_above_its_maximum_over_a_handful_of_requests_is_held_until_it_clears_or_the_end(
        traffic, monkeypatch):
    """0.1 requests/s: the canary has not served the judge's minimum sample, so a gate's ratio is noise - held, not
    obeyed. One that clears does not abort (the policy decides the undecided step); one still above its maximum at
    the end of the analysis fails the step, even where the policy would promote it."""
    traffic.rate = 0.1
    traffic.gate = lambda now: 0.5 if 20 <= now < 60 else 0.0
    monkeypatch.setattr(load_plugin("plugins/module_utils/colors_release_watch.py"), "prometheus_query",
                        traffic.answer)  # the gates once more, after the last step
    cluster = Cluster()
    canary(cluster, "colors:1.0.0")
    promote = {**JUDGE, "inconclusive": "promote"}
    result = judged_canary(cluster, "colors:1.1.0", traffic, judge=promote, gates=[GATE])
    assert [s["judge"]["state"] for s in result["steps"]] == ["inconclusive", "inconclusive"]
    assert cluster.image("colors") == "colors:1.1.0"

    traffic.gate = lambda now: 0.5 if now >= 20 else 0.0
    with pytest.raises(engine.ReleaseFailed) as err:
        judged_canary(cluster, "colors:1.2.0", traffic, judge=promote, gates=[GATE])
    assert "gate prometheus:error-ratio failed: gate{" in str(err.value)
    record = cluster.entries[-1]["steps"][0]["judge"]
    assert (record["state"], record["seconds"]) == ("aborted", JUDGE["max_analysis"])
    assert cluster.image("colors") == "colors:1.1.0"


def test_too_few_requests_extend_the_analysis_and_the_policy_decides_at_its_end(traffic):
    traffic.rate = 0.1  # 30 requests in 300 s (29 after the first reading): below the minimum sample
    cluster, message = aborted_judged_canary(traffic)
    assert "gate judge-inconclusive failed: undecided after 300s (extend)" in message
    assert "error-ratio: 29 requests on the smaller side, 200 needed" in message
    assert "latency-p99: 29 requests on the smaller side, 200 needed" in message
    assert cluster.entries[-1]["steps"][0]["judge"]["state"] == "inconclusive"
    assert cluster.image("colors") == "colors:1.0.0"
    promoted = judged_canary(cluster, "colors:1.2.0", traffic, judge={**JUDGE, "inconclusive": "promote"})
    assert [s["judge"]["state"] for s in promoted["steps"]] == ["inconclusive", "inconclusive"]
    assert cluster.image("colors") == "colors:1.2.0"


def test_a_canary_whose_pods_crash_during_the_analysis_is_aborted_by_its_rollout(traffic):
    cluster = Cluster()
    real_sleep = traffic.sleep

    def crash_after_a_look(seconds):
        real_sleep(seconds)
        cluster.outcomes["colors:1.1.0"] = "CrashLoopBackOff"
        cluster._settle(cluster.deployments["colors-canary"])

    traffic.sleep = crash_after_a_look
    cluster, message = aborted_judged_canary(traffic, cluster)
    assert "gate pod-crashloop failed" in message
    assert cluster.entries[-1]["steps"][0]["judge"]["state"] == "aborted"


def test_counters_that_restart_count_from_zero_and_buckets_become_windows(monkeypatch):
    readings = iter([[({}, 100.0)], [({}, 400.0)], [({}, 50.0)]])
    monkeypatch.setattr(analysis_mod, "_vector", lambda target, query: next(readings) if "total" in query else [])
    metric = {"name": "errors", "kind": "ratio", "bad": "bad{$pods}", "total": "total{$pods}", "tolerance": 0.01}
    analysis = analysis_mod.Analysis(None, {"metrics": [metric]}, "c", "b")
    analysis.sides = {"canary": analysis.sides["canary"]}
    for _ in range(3):
        analysis.look()
    assert analysis.sides["canary"].windows["errors"] == [(0, 300), (0, 50)]  # 100 -> 400, then a restart: 50


def test_a_gate_over_a_range_is_obeyed_by_the_requests_within_that_range_not_by_all_so_far(traffic):
    """1 request/s: the canary passes 200 requests at 200 s, but a gate over the last minute never sees more than 60 -
    its breach stays held to the end of the analysis, where it fails the step."""
    traffic.rate = 1.0
    traffic.gate = lambda now: 0.5 if now >= 20 else 0.0
    gate = {**GATE, "query": "gate{$pods}[1m]"}
    cluster, message = aborted_judged_canary(traffic, gates=[gate], judge={**JUDGE, "inconclusive": "promote"})
    assert "gate prometheus:error-ratio failed" in message
    assert cluster.entries[-1]["steps"][0]["judge"]["seconds"] == JUDGE["max_analysis"]


@pytest.mark.parametrize(("query", "seconds"), [
    ('(sum(rate(r{a="b",s=~"5.."}[2m])) or vector(0)) / sum(rate(r{a="b"}[2m]))', 120),
    ("histogram_quantile(0.95, sum by (le) (rate(b[5m])))", 300), ("max_over_time(x[1h30m:1m])", 5400),
    ("rate(x[90s]) > rate(x[1m])", 90), ("up", None), ('rate(r{status=~"[45].."}[5m])', 300),
    ('r{status=~"[45].."}', None)])
def test_the_range_a_gate_looks_back_over_is_its_longest_range_selector(query, seconds):
    assert analysis_mod.range_seconds(query) == seconds


@pytest.mark.parametrize(("judge", "extra", "problem"), [
    (JUDGE, {"strategy": "rolling"}, "judge decides canary and blue-green releases (strategy=canary or blue_green), "
                                     "not strategy=rolling"),
    (JUDGE, {"prometheus": {}}, "judge reads the canary and its baseline from Prometheus"),
    ({**JUDGE, "metrics": [{"name": "e", "kind": "ratio", "total": "t", "tolerance": 0.01}]}, {},
     "judge metric 'e' (ratio) lacks bad"),
    ({**JUDGE, "metrics": [{"name": "e", "kind": "mean", "tolerance": 1}]}, {},
     "judge metric 'e': kind must be ratio, quantile or value, not 'mean'"),
])
def test_a_judge_that_cannot_work_is_refused_before_anything_changes(judge, extra, problem):
    release = load_plugin("plugins/modules/colors_release.py")
    p = {**params("colors:1.1.0", replicas=4, canary_steps=STEPS, strategy="canary", judge=judge,
                  prometheus={"url": "http://prometheus"}), **extra}
    assert problem in release.validate(p)


def judged_blue_green(cluster: Cluster, image: str, traffic: Traffic, judge=None) -> dict:
    p = params(image, judge=judge or JUDGE, prometheus={"url": "http://prometheus", "queries": [],
                                                        "no_data_timeout": 120})
    return engine.BlueGreenRelease(cluster, p, clock=traffic.clock, sleep=traffic.sleep, wall=traffic.clock).run()


@pytest.fixture
def green_traffic(monkeypatch):
    """Traffic where green is the new colour (the second blue-green release), blue served the 15 minutes before."""
    traffic = Traffic(canary="colors-green", start=1000.0)
    monkeypatch.setattr(analysis_mod, "prometheus_query", traffic.answer)
    return traffic


def test_a_blue_green_release_judged_after_the_switch_against_the_colour_that_served_before_stays(green_traffic):
    cluster = Cluster()
    first = judged_blue_green(cluster, "colors:1.0.0", green_traffic)
    assert "analysis" not in first, "the first colour has nothing to be compared with"
    result = judged_blue_green(cluster, "colors:1.1.0", green_traffic)
    assert cluster.routed_color() == "green" and result["analysis"]["state"] == "passed"
    ratio = next(m for m in result["analysis"]["metrics"] if m["metric"] == "error-ratio")
    # The baseline: blue's 300 s of traffic before the switch, read over a range; green: what it took since.
    assert ratio["baseline"]["total"] == 20 * 300 and 200 <= ratio["canary"]["total"] < 20 * 300
    assert any("query_range" not in q and "colors-green" in q for q in green_traffic.queries)
    assert cluster.entries[-1]["verdict"] == "succeeded" and cluster.entries[-1]["analysis"]["state"] == "passed"


def test_a_blue_green_release_the_judge_finds_worse_after_the_switch_is_switched_back_at_once(green_traffic):
    green_traffic.errors["canary"] = 0.05
    cluster = Cluster()
    judged_blue_green(cluster, "colors:1.0.0", green_traffic)
    with pytest.raises(engine.ReleaseFailed) as err:
        judged_blue_green(cluster, "colors:1.1.0", green_traffic)
    message = str(err.value)
    assert "failed gate judge on green after the switch: error-ratio: the canary is worse by" in message
    assert "The Service was switched back to blue and green scaled to zero." in message
    assert "Read back now: service colors selects blue" in message
    assert cluster.routed_color() == "blue" and cluster.replicas("colors-green") == 0
    entry = cluster.entries[-1]
    assert (entry["verdict"], entry["gate"], entry["analysis"]["state"]) == ("rolled_back", "judge", "failed")


def test_a_judge_query_prometheus_refuses_aborts_the_canary_naming_the_query(traffic, monkeypatch):
    monkeypatch.setattr(analysis_mod, "prometheus_query", lambda target, query, path="", **extra: {
        "status": "error", "errorType": "bad_data", "error": "parse error at char 5"})
    cluster, message = aborted_judged_canary(traffic)
    assert "gate judge failed: query 'sum(requests{namespace=" in message
    assert "failed: parse error at char 5: the judge's metrics could not be read" in message
    assert cluster.replicas("colors-canary") == 0 and cluster.replicas("colors-baseline") == 0
    assert cluster.image("colors") == "colors:1.0.0"
