"""Unit tests of the release engine's decisions (plugins/module_utils/colors_release_engine.py and the rollout
watcher, colors_release_watch.py).

FakeCluster plays the API server and the Deployment controller: each pod template it is given becomes a
new revision whose pods turn ready, or report the waiting reason scripted for that image.
"""

from __future__ import annotations

import copy

import pytest
from helpers import load_plugin

engine = load_plugin("plugins/module_utils/colors_release_engine.py")
watch = load_plugin("plugins/module_utils/colors_release_watch.py")
REV = "deployment.kubernetes.io/revision"


def manifest(image):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "colors", "namespace": "colors"},
            "spec": {"replicas": 2, "progressDeadlineSeconds": 30,
                     "selector": {"matchLabels": {"app.kubernetes.io/name": "colors"}},
                     "template": {"metadata": {"labels": {"app.kubernetes.io/name": "colors"}},
                                  "spec": {"containers": [{"name": "colors", "image": image}]}}}}


class FakeCluster:
    def __init__(self, outcomes=None):
        self.outcomes = outcomes or {}  # image -> waiting reason of its pods (absent: pods turn ready)
        self.deployment = None
        self.rs_list: list[dict] = []
        self.pod_list: list[dict] = []
        self.entries: list[dict] = []
        self.applied = 0

    # --- the controller ---
    def _roll(self, template):
        image = template["spec"]["containers"][0]["image"]
        revision = max([int(rs["metadata"]["annotations"][REV]) for rs in self.rs_list] or [0]) + 1
        existing = next((rs for rs in self.rs_list
                         if rs["spec"]["template"]["spec"]["containers"][0]["image"] == image), None)
        rs = existing or {"metadata": {"name": f"colors-{len(self.rs_list)}", "labels": {},
                                       "ownerReferences": [{"kind": "Deployment", "name": "colors"}]},
                          "spec": {"template": copy.deepcopy(template)}}
        rs["metadata"]["annotations"] = {REV: str(revision)}
        rs["metadata"]["labels"]["pod-template-hash"] = rs["metadata"]["name"]
        if not existing:
            self.rs_list.append(rs)
        self.deployment["metadata"]["generation"] += 1
        self.deployment["metadata"]["annotations"] = {REV: str(revision)}
        self.deployment["spec"]["template"] = copy.deepcopy(template)
        reason = self.outcomes.get(image)
        state = {"waiting": {"reason": reason}} if reason else {"running": {}}
        self.pod_list = [{"metadata": {"name": f"{rs['metadata']['name']}-{i}",
                                   "labels": {"pod-template-hash": rs["metadata"]["name"]}},
                      "spec": {"containers": [{"name": "colors", "image": image}]},
                      "status": {"containerStatuses": [{"name": "colors", "state": state}]}} for i in range(2)]
        ready = 0 if reason else 2
        self.deployment["status"] = {"observedGeneration": self.deployment["metadata"]["generation"],
                                     "replicas": 2, "updatedReplicas": 2, "readyReplicas": ready,
                                     "availableReplicas": ready, "conditions": []}

    # --- ClusterApi ---
    def get_deployment(self, namespace, name):
        return copy.deepcopy(self.deployment)

    def apply(self, kind, body):
        if kind != "Deployment":
            return body
        self.applied += 1
        if self.deployment is None:
            self.deployment = {**copy.deepcopy(body), "metadata": {**body["metadata"], "generation": 0}}
            self._roll(body["spec"]["template"])
        elif body["spec"]["template"] != self.deployment["spec"]["template"]:
            self._roll(body["spec"]["template"])
        return copy.deepcopy(self.deployment)

    def replace_template(self, namespace, name, template):
        self._roll(template)
        return copy.deepcopy(self.deployment)

    def replicasets(self, namespace, selector):
        return copy.deepcopy(self.rs_list)

    def pods(self, namespace, selector):
        return copy.deepcopy(self.pod_list)

    def ledger(self, namespace, release):
        return list(self.entries)

    def record(self, namespace, release, entry):
        self.entries.append(copy.deepcopy(entry))


def release(cluster, image, auto_rollback=True, check_mode=False, contract=()):
    params = {"namespace": "colors", "deployment": manifest(image), "version": image.rsplit(":", 1)[1],
              "actor": "tester", "auto_rollback": auto_rollback, "poll_interval": 0,
              "contract_migrations": list(contract)}
    return engine.RollingRelease(cluster, params, sleep=lambda s: None).run(check_mode=check_mode)


def test_a_healthy_release_is_recorded_as_succeeded():
    cluster = FakeCluster()
    result = release(cluster, "colors:1.0.0")
    assert result["changed"] and result["verdict"]["state"] == "healthy"
    assert [e["verdict"] for e in cluster.entries] == ["succeeded"]
    assert cluster.entries[0]["image"] == "colors:1.0.0" and cluster.entries[0]["actor"] == "tester"


def test_the_same_release_again_changes_nothing_and_records_nothing():
    cluster = FakeCluster()
    release(cluster, "colors:1.0.0")
    result = release(cluster, "colors:1.0.0")
    assert result["changed"] is False and result["verdict"]["state"] == "healthy"
    assert len(cluster.entries) == 1


def test_a_crashlooping_release_is_rolled_back_and_the_failure_names_gate_evidence_and_restored_release():
    cluster = FakeCluster({"colors:1.1.0": "CrashLoopBackOff"})
    release(cluster, "colors:1.0.0")
    with pytest.raises(engine.ReleaseFailed) as err:
        release(cluster, "colors:1.1.0")
    message = str(err.value)
    assert "Release 1.1.0 (colors:1.1.0) failed gate pod-crashloop" in message
    assert "container colors: CrashLoopBackOff" in message and "Restored colors:1.0.0" in message
    assert cluster.deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "colors:1.0.0"
    assert err.value.result["rolled_back"] is True and err.value.result["restored"]["state"] == "healthy"
    assert cluster.entries[-1]["verdict"] == "rolled_back" and cluster.entries[-1]["gate"] == "pod-crashloop"


def _release_while(cluster, image, meanwhile):
    """A release during whose watch `meanwhile(cluster)` runs once (another hand acting on the Deployment)."""
    calls = []

    def sleep(_seconds):
        if not calls:
            calls.append(meanwhile(cluster))

    params = {"namespace": "colors", "deployment": manifest(image), "version": image.rsplit(":", 1)[1],
              "actor": "tester", "auto_rollback": True, "poll_interval": 0}
    return engine.RollingRelease(cluster, params, sleep=sleep).run()


def test_a_release_another_hand_rolls_back_meanwhile_is_aborted_naming_what_changed_and_never_claimed():
    """The interleaving of the issue: a never-ready release is rolling out, someone restores the previous release
    under it; the release neither reports success (the rollout it reads is no longer its own) nor fights back."""
    cluster = FakeCluster({"colors:1.1.0": "ContainerCreating"})  # never ready, nothing fatal: it waits
    release(cluster, "colors:1.0.0")
    previous = copy.deepcopy(cluster.deployment["spec"]["template"])
    theirs = []
    with pytest.raises(engine.ReleaseFailed) as err:
        _release_while(cluster, "colors:1.1.0", lambda c: theirs.append(
            c.replace_template("colors", "colors", previous)["metadata"]["generation"]))
    message = str(err.value)
    assert "failed gate changed-during-release" in message
    assert "its image is now colors:1.0.0 (this release applied colors:1.1.0)" in message
    assert "restored nothing and recorded no success" in message
    assert cluster.deployment["metadata"]["generation"] == theirs[0]  # no write of its own after the other hand's
    assert cluster.deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "colors:1.0.0"
    assert [e["verdict"] for e in cluster.entries] == ["succeeded", "aborted"]
    assert cluster.entries[-1]["gate"] == "changed-during-release"


def test_a_deployment_deleted_during_the_release_fails_it_saying_so():
    cluster = FakeCluster({"colors:1.1.0": "ContainerCreating"})
    release(cluster, "colors:1.0.0")

    def delete(c):
        c.deployment = None

    with pytest.raises(engine.ReleaseFailed, match="deployment colors was deleted during the release"):
        _release_while(cluster, "colors:1.1.0", delete)
    assert cluster.entries[-1]["verdict"] == "aborted"


def test_without_automatic_rollback_the_failed_release_stays_and_says_so():
    cluster = FakeCluster({"colors:1.1.0": "ImagePullBackOff"})
    release(cluster, "colors:1.0.0")
    with pytest.raises(engine.ReleaseFailed, match="Nothing was restored: automatic rollback is off"):
        release(cluster, "colors:1.1.0", auto_rollback=False)
    assert cluster.entries[-1]["verdict"] == "failed"


def test_a_failing_first_release_has_nothing_to_restore():
    cluster = FakeCluster({"colors:1.0.0": "ErrImagePull"})
    with pytest.raises(engine.ReleaseFailed, match="there is no earlier release"):
        release(cluster, "colors:1.0.0")


def test_check_mode_reports_and_records_nothing():
    cluster = FakeCluster()
    result = release(cluster, "colors:1.0.0", check_mode=True)
    assert result["verdict"] == {"state": "would-release"} and cluster.entries == []


def _rollback(cluster, to_revision=None, to_version=None, check_mode=False):
    params = {"namespace": "colors", "poll_interval": 0, "auto_rollback": False,
              "deployment": {"metadata": {"name": "colors"},
                             "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": "colors"}}}}}
    rel = engine.RollingRelease(cluster, params, sleep=lambda s: None)
    return engine.manual_rollback(rel, to_revision, to_version, "oncall", check_mode=check_mode)


def test_manual_rollback_goes_to_the_previous_good_release_skipping_failed_attempts():
    cluster = FakeCluster({"colors:1.1.0": "CrashLoopBackOff"})
    release(cluster, "colors:1.0.0")
    with pytest.raises(engine.ReleaseFailed):
        release(cluster, "colors:1.1.0", auto_rollback=False)  # the failed revision stays, right before 1.2.0
    release(cluster, "colors:1.2.0")
    result = _rollback(cluster)
    assert result["target_image"] == "colors:1.0.0" and result["restored"]["state"] == "healthy"
    assert cluster.entries[-1]["strategy"] == "manual-rollback"


def test_manual_rollback_to_any_recorded_version_or_revision():
    cluster = FakeCluster()
    for image in ("colors:1.0.0", "colors:1.1.0", "colors:1.2.0"):
        release(cluster, image)
    assert _rollback(cluster, to_version="1.0.0")["target_image"] == "colors:1.0.0"
    revision_of_110 = next(h["revision"] for h in _rollback(cluster, check_mode=True)["history"]
                           if h["image"] == "colors:1.1.0")
    assert _rollback(cluster, to_revision=revision_of_110)["target_image"] == "colors:1.1.0"


def test_manual_rollback_to_an_unknown_version_lists_the_recorded_ones():
    cluster = FakeCluster()
    release(cluster, "colors:1.0.0")
    with pytest.raises(engine.ReleaseFailed, match=r"version 9\.9\.9: it is not among the recorded revisions. "
                                                   r"Recorded: 1 \(colors:1\.0\.0\)"):
        _rollback(cluster, to_version="9.9.9")


def test_manual_rollback_in_check_mode_changes_nothing():
    cluster = FakeCluster()
    release(cluster, "colors:1.0.0")
    release(cluster, "colors:1.1.0")
    result = _rollback(cluster, check_mode=True)
    assert result["verdict"] == {"state": "would-roll-back"} and result["target_image"] == "colors:1.0.0"
    assert cluster.deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "colors:1.1.0"


def test_a_failed_release_that_ran_a_contract_migration_is_not_rolled_back_and_says_why():
    cluster = FakeCluster({"colors:1.1.0": "CrashLoopBackOff"})
    release(cluster, "colors:1.0.0")
    with pytest.raises(engine.ReleaseFailed) as err:
        release(cluster, "colors:1.1.0", contract=["0004_contract_author_required.sql"])
    assert ("Nothing was restored: this release ran migration 0004_contract_author_required.sql, which is not "
            "expand-only (contract): colors:1.0.0 cannot run on that schema") in str(err.value)
    assert cluster.deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "colors:1.1.0"
    assert cluster.entries[-1]["verdict"] == "failed"
    assert cluster.entries[-1]["contract_migrations"] == ["0004_contract_author_required.sql"]


def test_no_rollback_goes_back_past_a_contract_migration_and_later_ones_still_do():
    cluster = FakeCluster()
    release(cluster, "colors:1.0.0")
    release(cluster, "colors:1.1.0", contract=["0004_contract_author_required.sql"])
    release(cluster, "colors:1.2.0")
    before = (cluster.applied, len(cluster.entries))
    for check_mode in (True, False):
        with pytest.raises(engine.ReleaseFailed, match=(
                r"Rollback to colors:1\.0\.0 refused: release 1\.1\.0 \(colors:1\.1\.0\) ran migration "
                r"0004_contract_author_required\.sql, which is not expand-only \(contract\): colors:1\.0\.0 cannot "
                r"run on that schema. Nothing was changed.")):
            _rollback(cluster, to_version="1.0.0", check_mode=check_mode)
    assert (cluster.applied, len(cluster.entries)) == before
    assert _rollback(cluster)["target_image"] == "colors:1.1.0"  # the contract release itself: its schema
    assert engine.past_a_contract(cluster.entries, "colors:1.2.0") is None
    # Releasing the version from before the contract again is the same rollback by another name; a new one is not.
    with pytest.raises(engine.ReleaseFailed, match=r"Releasing 1\.0\.0 again, going back to colors:1\.0\.0 refused: "
                                                   r"release 1\.1\.0 \(colors:1\.1\.0\) ran migration"):
        engine.refuse_an_earlier_release_past_a_contract(cluster.entries, "colors:1.0.0", "1.0.0")
    engine.refuse_an_earlier_release_past_a_contract(cluster.entries, "colors:1.3.0", "1.3.0")


def test_a_colour_gets_its_own_name_selector_and_pod_label_and_the_service_follows_it():
    body = engine.colored(manifest("colors:1.0.0"), "green")
    assert body["metadata"]["name"] == "colors-green"
    assert body["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "colors", "colors.io/color": "green"}
    assert body["spec"]["template"]["metadata"]["labels"]["colors.io/color"] == "green"
    assert manifest("colors:1.0.0")["metadata"]["name"] == "colors"  # the input is not modified
    service = {"metadata": {"name": "colors"}, "spec": {"selector": {"app.kubernetes.io/name": "colors"}}}
    assert engine.routed(service, "blue")["spec"]["selector"]["colors.io/color"] == "blue"
    assert "colors.io/color" not in service["spec"]["selector"]


class FakePrometheus:
    """Answers /api/v1/query from a script: query -> list of answers (the last one repeats); records what was asked."""

    def __init__(self, answers: dict[str, list]):
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, url, query, timeout=10.0):
        self.asked.append(query)
        values = self.answers.get(query, [[]])
        value = values.pop(0) if len(values) > 1 else values[0]
        return {"status": "success", "data": {"resultType": "vector",
                                              "result": [{"metric": {}, "value": [0, v]} for v in value]}}


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


GATE = {"name": "error-ratio", "query": "sum(rate(x{$pods,status=~'5..'}[2m])) / sum(rate(x{$pods}[2m]))", "max": 0.02}
SELECTED = 'namespace="colors",pod_template_hash="abc123"'
QUERY = GATE["query"].replace("$pods", SELECTED)


def _gated(image: str) -> dict:
    """A rolling release of image whose metric gate is GATE (5 s for data)."""
    return {"namespace": "colors", "deployment": manifest(image), "version": image.rsplit(":", 1)[1],
            "actor": "tester", "auto_rollback": True, "poll_interval": 0,
            "prometheus": {"url": "http://p", "queries": [GATE], "no_data_timeout": 5}}


def test_metric_gates_select_the_judged_pods_by_their_template_hash(monkeypatch):
    prom = FakePrometheus({QUERY: [["0.001"]]})
    monkeypatch.setattr(watch, "prometheus_query", prom)
    verdict = watch.metric_gates("http://p", [GATE], watch.pod_selector("colors", "abc123"), 60)
    assert verdict.state == "healthy" and verdict.detail["metrics"] == {"error-ratio": 0.001}
    assert prom.asked == [QUERY]


def test_no_data_is_awaited_then_judged(monkeypatch):
    prom = FakePrometheus({QUERY: [[], ["NaN"], ["0.5"]]})
    monkeypatch.setattr(watch, "prometheus_query", prom)
    clock = Clock()
    verdict = watch.metric_gates("http://p", [GATE], SELECTED, 60, clock, clock.sleep)
    assert verdict.state == "failed" and verdict.evidence == [f"{QUERY} = 0.5 > 0.02"]
    assert len(prom.asked) == 3 and 0 < clock.now < 60


def test_a_gate_whose_selector_matches_nothing_fails_at_its_bound_naming_query_and_selector(monkeypatch):
    prom = FakePrometheus({f"count(up{{{SELECTED}}} == 1)": [[]]})
    monkeypatch.setattr(watch, "prometheus_query", prom)
    clock = Clock()
    verdict = watch.metric_gates("http://p", [GATE], SELECTED, 30, clock, clock.sleep)
    assert verdict.state == "failed" and verdict.gate == "prometheus:error-ratio"
    assert verdict.evidence == [f"{QUERY} returned no data for 30s (no series selected; a gate without data never "
                                f"passes); Prometheus scrapes 0 target(s) matching {{{SELECTED}}}"]
    assert 30 <= clock.now < 36  # waited up to the bound, not past it by more than one pause


def test_prometheus_unreachable_is_asked_again_then_the_gate_is_inconclusive_and_fails(monkeypatch):
    asked = []

    def down(url, query, timeout=10.0):
        asked.append(query)
        return {"status": "error", "errorType": watch.UNREACHABLE, "error": f"Prometheus at {url} unreachable: refused"}

    monkeypatch.setattr(watch, "prometheus_query", down)
    clock = Clock()
    verdict = watch.metric_gates("http://p", [GATE], SELECTED, 30, clock, clock.sleep)
    assert (verdict.state, verdict.gate) == ("failed", "prometheus-unreachable")
    assert verdict.evidence == ["Prometheus at http://p unreachable: refused, still after 30s: the release's metrics "
                                "could not be read, so its gates are inconclusive and it is not promoted"]
    assert verdict.detail == {"inconclusive": True}
    assert len(asked) > 3 and 30 <= clock.now < 36


def test_prometheus_away_for_a_moment_does_not_fail_a_healthy_release(monkeypatch):
    answers = [{"status": "error", "errorType": watch.UNREACHABLE, "error": "Prometheus at http://p answered HTTP 503"}]

    def blip(url, query, timeout=10.0):
        return answers.pop(0) if answers else {"status": "success", "data": {"result": [{"value": [0, "0.001"]}]}}

    monkeypatch.setattr(watch, "prometheus_query", blip)
    clock = Clock()
    verdict = watch.metric_gates("http://p", [GATE], SELECTED, 30, clock, clock.sleep)
    assert verdict.state == "healthy" and verdict.detail["metrics"] == {"error-ratio": 0.001}


def test_a_query_prometheus_rejects_fails_at_once_it_is_not_inconclusive(monkeypatch):
    monkeypatch.setattr(watch, "prometheus_query", lambda url, query, timeout=10.0: {
        "status": "error", "errorType": "bad_data", "error": "parse error"})
    clock = Clock()
    verdict = watch.metric_gates("http://p", [GATE], SELECTED, 30, clock, clock.sleep)
    assert (verdict.gate, clock.now) == ("prometheus:error-ratio", 0) and "parse error" in verdict.evidence[0]


def test_a_prometheus_nobody_listens_on_is_unreachable():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    answer = watch.prometheus_query(watch.url_target(f"http://127.0.0.1:{port}", timeout=2), "up")
    assert answer["errorType"] == watch.UNREACHABLE and f"Prometheus at http://127.0.0.1:{port} unreachable" in \
        answer["error"]


def test_a_rolling_release_whose_prometheus_is_down_is_not_claimed_and_rolled_back(monkeypatch):
    cluster = FakeCluster()
    release(cluster, "colors:1.0.0")
    monkeypatch.setattr(watch, "prometheus_query", lambda url, query, timeout=10.0: {
        "status": "error", "errorType": watch.UNREACHABLE, "error": f"Prometheus at {url} unreachable: refused"})
    params = _gated("colors:1.1.0")
    clock = Clock()
    with pytest.raises(engine.ReleaseFailed) as err:
        engine.RollingRelease(cluster, params, clock=clock, sleep=clock.sleep).run()
    assert "failed gate prometheus-unreachable" in str(err.value) and "inconclusive" in str(err.value)
    assert "Restored colors:1.0.0" in str(err.value)
    assert cluster.entries[-1]["verdict"] == "rolled_back" and cluster.entries[-1]["gate"] == "prometheus-unreachable"


def test_a_rolling_release_is_judged_by_the_metrics_of_its_new_pods_and_rolled_back_without_data(monkeypatch):
    cluster = FakeCluster()
    release(cluster, "colors:1.0.0")
    prom = FakePrometheus({})
    monkeypatch.setattr(watch, "prometheus_query", prom)
    params = _gated("colors:1.1.0")
    clock = Clock()
    with pytest.raises(engine.ReleaseFailed) as err:
        engine.RollingRelease(cluster, params, clock=clock, sleep=clock.sleep).run()
    new_hash = cluster.rs_list[-1]["metadata"]["labels"]["pod-template-hash"]
    assert prom.asked[0] == GATE["query"].replace("$pods", f'namespace="colors",pod_template_hash="{new_hash}"')
    assert "failed gate prometheus:error-ratio" in str(err.value) and "returned no data for 5s" in str(err.value)
    assert "Restored colors:1.0.0" in str(err.value)
    assert cluster.entries[-1]["verdict"] == "rolled_back"


def test_a_healthy_gate_records_its_values_with_the_verdict(monkeypatch):
    cluster = FakeCluster()
    release(cluster, "colors:1.0.0")
    monkeypatch.setattr(watch, "prometheus_query", lambda url, query, timeout=10.0: {
        "status": "success", "data": {"result": [{"metric": {}, "value": [0, "0"]}]}})
    params = _gated("colors:1.1.0")
    result = engine.RollingRelease(cluster, params, sleep=lambda s: None).run()
    assert result["verdict"]["state"] == "healthy" and result["verdict"]["metrics"] == {"error-ratio": 0.0}


def test_a_rolling_release_behind_its_service_is_judged_once_the_service_routes_only_to_the_new_pods(monkeypatch):
    cluster = FakeCluster()
    release(cluster, "colors:1.0.0")
    old_pods = [p["metadata"]["name"] for p in cluster.pod_list]
    looks = []

    def endpoint_pods(namespace, service):  # the old pods drain for three looks, then only the new ones remain
        looks.append(service)
        return old_pods if len(looks) <= 3 else [p["metadata"]["name"] for p in cluster.pod_list]

    cluster.endpoint_pods = endpoint_pods
    smoked = []
    monkeypatch.setattr(watch, "http_smoke",
                        lambda target, status, path, **_: smoked.append(len(looks)) or watch.Verdict("healthy"))
    params = {"namespace": "colors", "deployment": manifest("colors:1.1.0"), "version": "1.1.0", "actor": "tester",
              "auto_rollback": True, "poll_interval": 0, "http_smoke": {"url": "http://colors/"},
              "service": {"metadata": {"name": "colors"}, "spec": {"selector": {}}}}
    result = engine.RollingRelease(cluster, params, sleep=lambda s: None).run()
    assert result["verdict"]["state"] == "healthy" and looks == ["colors"] * 4
    assert smoked == [4]  # the smoke check ran after the Service stopped routing to the old pods


def test_a_service_that_keeps_routing_to_the_old_pods_fails_the_release_naming_them():
    cluster = FakeCluster()
    release(cluster, "colors:1.0.0")
    old_pods = [p["metadata"]["name"] for p in cluster.pod_list]
    cluster.endpoint_pods = lambda namespace, service: old_pods
    cluster.get_service = lambda namespace, name: {"metadata": {"name": name},
                                                   "spec": {"selector": {"app.kubernetes.io/name": "colors"}}}
    clock = Clock()
    params = {"namespace": "colors", "deployment": manifest("colors:1.1.0"), "version": "1.1.0", "actor": "tester",
              "auto_rollback": True, "poll_interval": 0,
              "service": {"metadata": {"name": "colors"}, "spec": {"selector": {}}}}
    with pytest.raises(engine.ReleaseFailed) as err:
        engine.RollingRelease(cluster, params, clock=clock, sleep=clock.sleep).run()
    assert "failed gate service-routing: service colors still routes to pods of the previous revision after 60s: " \
           f"{', '.join(old_pods)}" in str(err.value)
    # Where traffic is after the rollback, as read back from the Service and its EndpointSlices.
    assert str(err.value).endswith("Read back now: service colors routes to 2 pods (2 of colors:1.0.0).")


def test_a_release_whose_lock_a_rollback_took_stops_writing_nothing_more_not_even_its_ledger_entry():
    """Fencing: the engine's cluster calls go through the release lock's fence. Someone pre-empts the release -
    breaks its lock, takes it, restores the previous release - and the release, at its next look, changes nothing
    and records nothing: the lock's new holder decides what serves."""
    lock_mod = load_plugin("plugins/module_utils/colors_release_lock.py")
    leases = {}

    class Leases:  # enough of the Lease API for ReleaseLock
        def read(self, namespace, name):
            return copy.deepcopy(leases.get(name))

        def create(self, namespace, body):
            leases[body["metadata"]["name"]] = {**copy.deepcopy(body), "metadata": {**body["metadata"],
                                                                                   "resourceVersion": "1"}}

        def replace(self, namespace, name, body):
            self.create(namespace, body)

        def delete(self, namespace, name, resource_version):
            leases.pop(name)

    lock = lock_mod.ReleaseLock(Leases(), "colors", "colors-release")
    cluster = FakeCluster({"colors:1.1.0": "ContainerCreating"})
    release(cluster, "colors:1.0.0")
    previous = copy.deepcopy(cluster.deployment["spec"]["template"])
    lock.acquire("ci/run-1", 60)
    fence = lock_mod.Fence(lock, "ci/run-1", 60, sleep=lambda s: None)
    generations = []

    def pre_empt(c):
        lock.release("oncall", force=True)
        lock.acquire("oncall/run-2", 60)
        generations.append(c.replace_template("colors", "colors", previous)["metadata"]["generation"])

    calls = []

    def sleep(seconds):
        if not calls:
            calls.append(pre_empt(cluster))

    params = {"namespace": "colors", "deployment": manifest("colors:1.1.0"), "version": "1.1.0", "actor": "ci/run-1",
              "auto_rollback": True, "poll_interval": 0}
    with pytest.raises(engine.ReleaseFailed) as err:
        engine.RollingRelease(fence.guard(cluster), params, sleep=sleep).run()
    message = str(err.value)
    assert "failed gate changed-during-release" in message and "recorded nothing" in message
    assert "lost the release lock: release lock colors/colors-release is held by oncall/run-2" in message
    assert cluster.deployment["metadata"]["generation"] == generations[0]  # nothing written after the rollback's
    assert [e["verdict"] for e in cluster.entries] == ["succeeded"]  # no entry of the fenced release


def test_a_rollback_that_pre_empted_a_release_names_it_in_its_ledger_entry():
    cluster = FakeCluster()
    release(cluster, "colors:1.0.0")
    release(cluster, "colors:1.1.0")
    rolling = engine.RollingRelease(cluster, {"namespace": "colors", "deployment": manifest("colors:1.1.0"),
                                              "poll_interval": 0, "auto_rollback": False}, sleep=lambda s: None)
    engine.manual_rollback(rolling, None, None, "oncall", pre_empts="ci/run-1")
    assert cluster.entries[-1]["strategy"] == "manual-rollback" and cluster.entries[-1]["pre_empted"] == "ci/run-1"
