"""The release engine on the real API server: each failure kind is rolled back automatically, manual
rollback reaches any recorded release, and every attempt lands in the release ledger."""

from __future__ import annotations

import contextlib
import datetime
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import ON_SIMULATED_NODES, RELEASE_ONLY, REPO, ansible_playbook, recap, run, tool_env, wait_for
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.platform
NS = "colors"
ARGS = ("-i", "inventories/local", *ON_SIMULATED_NODES)


def _image(k8s):
    _, apps, _ = k8s
    return apps.read_namespaced_deployment("colors", NS).spec.template.spec.containers[0].image


def _ledger(k8s):
    core, _, _ = k8s
    items = core.list_namespaced_config_map(NS, label_selector="colors.io/release-ledger=colors").items
    return sorted((json.loads(cm.data["entry"]) for cm in items), key=lambda e: e["id"])


def _now():
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _lease(k8s):
    """The release lock's Lease spec, or None when nobody holds it."""
    try:
        return client.CoordinationV1Api(k8s[2]).read_namespaced_lease("colors-release", NS).spec
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _start_release(version, *extra):
    """A release as staging runs it, in the background (its own process group: a test can kill all of it)."""
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "ansible-playbook"), "deploy.yml", *ARGS, *RELEASE_ONLY,
         "-e", f"app_release_version={version}", *extra],
        cwd=REPO, env=tool_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _kill_tree(pid):
    """SIGKILL a process and every process under it (Ansible runs a module in a session of its own: killing the
    playbook's process group leaves the module running, and renewing its lock)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo += children.get(tree[-1], [])
    for process in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process, signal.SIGKILL)


def _deploy(version, *extra, **env):
    """A release as staging runs it, once good_release's first deploy bootstrapped the namespace."""
    return ansible_playbook("deploy.yml", *ARGS, *RELEASE_ONLY, "-e", f"app_release_version={version}", *extra, **env)


COMMITTED = "2026-01-02T03:04:05Z"  # when 2.1.0's commit was made: the report's lead time runs from it


@pytest.fixture(scope="module")
def good_release(k8s):
    # The first as the local inventory runs it: bootstrap, then release.
    first = ansible_playbook("deploy.yml", *ARGS, "-e", "app_release_version=2.0.0")
    assert first.returncode == 0, first.stdout[-3000:]
    second = _deploy("2.1.0", COLORS_RELEASE_COMMITTED=COMMITTED)  # as the deploy workflow passes it
    assert second.returncode == 0, second.stdout[-3000:]
    assert _image(k8s) == "localhost/colors:2.1.0"
    return "2.1.0"


@pytest.mark.parametrize(("version", "gate", "evidence"), [
    ("2.2.0-drill-crashloop", "pod-crashloop", "CrashLoopBackOff"),
    ("2.2.0-drill-pull-error", "image-pull", "ImagePullBackOff"),
    ("2.2.0-drill-never-ready", "rollout-progress", "ProgressDeadlineExceeded"),
])
def test_a_failing_release_is_rolled_back_automatically(k8s, good_release, version, gate, evidence, tmp_path):
    summary = tmp_path / "summary.md"
    result = _deploy(version, "-e", "app_release_progress_deadline_seconds=10", GITHUB_STEP_SUMMARY=str(summary))
    assert result.returncode != 0
    out = " ".join(result.stdout.split())  # the YAML callback folds long messages
    assert f"Release {version} (localhost/colors:{version}) failed gate {gate}" in out
    assert evidence in out
    assert "Restored localhost/colors:2.1.0" in out and "healthy again" in out
    assert _image(k8s) == "localhost/colors:2.1.0"
    _, apps, _ = k8s
    status = apps.read_namespaced_deployment("colors", NS).status
    assert status.ready_replicas == status.updated_replicas == 2
    entry = _ledger(k8s)[-1]
    assert (entry["version"], entry["verdict"], entry["gate"]) == (version, "rolled_back", gate)
    assert entry["rollback_target"]["image"] == "localhost/colors:2.1.0"
    # The job summary of the deploy workflow says so too.
    text = summary.read_text()
    assert text.startswith(f"## Colors {version} → local: FAILED")
    assert f"(gate {gate})" in text and evidence in text and "| Rolled back | yes, to `localhost/colors:2.1.0`" in text


def test_the_ledger_records_who_what_and_the_verdict_of_a_good_release(k8s, good_release):
    entry = next(e for e in reversed(_ledger(k8s)) if e["version"] == "2.1.0")
    assert entry["verdict"] == "succeeded" and entry["strategy"] == "rolling"
    assert entry["image"] == "localhost/colors:2.1.0" and entry["previous_image"] == "localhost/colors:2.0.0"
    assert entry["started"] <= entry["finished"] and entry["actor"]


def test_manual_rollback_reaches_a_chosen_older_release_and_back(k8s, good_release, tmp_path):
    # As rollback.yml (the workflow) runs it: `make rollback` with the inputs in the environment.
    summary = tmp_path / "summary.md"
    result = run(["make", "--no-print-directory", "rollback"], ENV="local", TO_VERSION="2.0.0", TO_REVISION="",
                 GITHUB_STEP_SUMMARY=str(summary))
    assert result.returncode == 0, result.stdout[-3000:]
    assert "-> localhost/colors:2.0.0" in result.stdout and "healthy" in result.stdout
    assert summary.read_text().startswith("## Colors rollback in local: healthy")
    assert "| To | `localhost/colors:2.0.0` |" in summary.read_text()
    assert _image(k8s) == "localhost/colors:2.0.0"
    assert _ledger(k8s)[-1]["strategy"] == "manual-rollback"
    forward = _deploy("2.1.0")
    assert forward.returncode == 0 and _image(k8s) == "localhost/colors:2.1.0"


def test_rollback_to_the_previous_release_skips_failed_attempts(k8s, good_release):
    assert _deploy("2.3.0-drill-crashloop", "-e", "app_release_auto_rollback=false").returncode != 0
    assert _image(k8s) == "localhost/colors:2.3.0-drill-crashloop"  # left in place: auto rollback was off
    result = ansible_playbook("rollback.yml", "-i", "inventories/local")
    assert result.returncode == 0, result.stdout[-3000:]
    assert _image(k8s) == "localhost/colors:2.1.0"


def test_rollback_to_an_unknown_version_lists_the_recorded_releases(k8s, good_release):
    result = ansible_playbook("rollback.yml", "-i", "inventories/local", "-e", "app_release_rollback_to_version=0.0.1")
    assert result.returncode != 0
    out = " ".join(result.stdout.split())
    assert "Cannot roll back colors/colors to version 0.0.1" in out and "localhost/colors:2.1.0" in out
    assert recap(result)["changed"] == 0


def test_a_rollback_pre_empts_a_running_release_which_stops_without_claiming_it(k8s, good_release):
    """The interleaving an on-call engineer causes: while a release that never gets ready rolls out, rollback.yml is
    refused (the release holds the lock) and changes nothing; pre-empting it restores the previous release, and the
    release stops at its next look, naming what it found - no restore of its own, no success in the ledger."""
    _, apps, _ = k8s
    version, before = "2.3.0-drill-never-ready", _image(k8s)
    since = _now()
    release = _start_release(version, "-e", "app_release_progress_deadline_seconds=120")
    try:
        wait_for("the release to roll out its pods", lambda: _image(k8s) == f"localhost/colors:{version}", timeout=120)
        holder = _lease(k8s).holder_identity
        generation = apps.read_namespaced_deployment("colors", NS).metadata.generation
        refused = ansible_playbook("rollback.yml", *ARGS)
        assert refused.returncode != 0
        assert "Another release is running" in " ".join(refused.stdout.split()), refused.stdout[-3000:]
        assert apps.read_namespaced_deployment("colors", NS).metadata.generation == generation
        pre_empted = ansible_playbook("rollback.yml", *ARGS, "-e", "app_release_lock_force_release=true")
        assert pre_empted.returncode == 0, pre_empted.stdout[-3000:]
        assert _image(k8s) == before
        out, _ = release.communicate(timeout=180)
    finally:
        release.kill()
    said = " ".join(out.split())
    assert release.returncode != 0, said[-3000:]
    # Fenced out: it stops at its next look (the Deployment changed under it) or its next renewal, whichever
    # comes first, naming the lock's new holder; it wrote nothing, not even a ledger entry.
    assert f"This run ({holder}) lost the release lock" in said, said[-3000:]
    if "failed gate changed-during-release" in said:
        assert f"its image is now {before} (this release applied localhost/colors:{version})" in said
        assert "restored nothing and recorded nothing" in said
    assert "is released" not in said
    assert _image(k8s) == before
    ledger = [e for e in _ledger(k8s) if e["started"] >= since]
    assert [e for e in ledger if e.get("version") == version] == []
    restorations = [e for e in ledger if e["strategy"] == "manual-rollback"]
    assert [(e["verdict"], e["image"], e.get("pre_empted")) for e in restorations] == [("succeeded", before, holder)]


def test_the_release_lock_is_renewed_while_its_holder_runs(k8s, good_release):
    """A release that outlasts its lock's duration three times over keeps the lock: its engine renews it at a third
    of the duration, so another run is refused all along; the lock is given back when the release ends."""
    duration, version = 12, "2.5.0-drill-never-ready"
    release = _start_release(version, "-e", f"app_release_lock_duration={duration}",
                             "-e", "app_release_progress_deadline_seconds=40")
    seen, done = [], threading.Event()

    def watch() -> None:  # every renewal the API server shows, while the release runs
        while not done.wait(0.5):
            if (spec := _lease(k8s)) and (not seen or seen[-1].renew_time != spec.renew_time):
                seen.append(spec)

    watcher = threading.Thread(target=watch, daemon=True)
    try:
        first = wait_for("the release to take the lock", lambda: _lease(k8s), timeout=60)
        watcher.start()
        wait_for("the release to hold the lock past twice its duration", lambda: (
            (spec := _lease(k8s)) and (spec.renew_time - spec.acquire_time).total_seconds() > 2 * duration), timeout=60)
        refused = _deploy("2.1.0")
        out, _ = release.communicate(timeout=120)
    finally:
        done.set()
        release.kill()
    watcher.join(timeout=5)
    assert refused.returncode != 0 and "Another release is running" in " ".join(refused.stdout.split())
    assert release.returncode != 0 and f"Restored localhost/colors:{good_release}" in " ".join(out.split())
    assert {s.holder_identity for s in seen} == {first.holder_identity}
    assert {s.acquire_time for s in seen} == {first.acquire_time}
    times = [first.acquire_time] + [s.renew_time for s in seen]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    held = (times[-1] - times[0]).total_seconds()
    print(f"lock held {held:.0f}s on a {duration}s lease: {len(seen)} renewals seen, longest gap {max(gaps):.1f}s")
    assert held > 3 * duration and max(gaps) <= duration / 3 + 2
    assert _lease(k8s) is None  # given back


def test_a_dead_holders_lock_frees_one_lease_after_its_last_renewal(k8s, good_release):
    """A release killed mid-rollout (its job cancelled, its runner gone) stops renewing: its lock frees one lease
    duration after its last renewal, and the next run takes it over and converges. A 30 s lease here (renewed every
    10 s: the refused run reaches the lock before it expires); the default of 60 s, which bounds how long a dead run
    blocks releases in every environment, is held by a unit test."""
    version, duration = "2.5.1-drill-never-ready", 30
    release = _start_release(version, "-e", f"app_release_lock_duration={duration}",
                             "-e", "app_release_progress_deadline_seconds=300")
    try:
        wait_for("the release to roll out its pods", lambda: _image(k8s) == f"localhost/colors:{version}", timeout=120)
    finally:
        _kill_tree(release.pid)  # the run dies: ansible-playbook, its workers and the module's process
        release.wait()
    killed = datetime.datetime.now(datetime.UTC)
    spec = _lease(k8s)
    assert spec.lease_duration_seconds == duration
    expires = spec.renew_time + datetime.timedelta(seconds=spec.lease_duration_seconds)
    refused = _deploy("2.1.0")
    assert refused.returncode != 0 and "Another release is running" in " ".join(refused.stdout.split())
    wait_for("the dead run's lock to expire", lambda: datetime.datetime.now(datetime.UTC) > expires,
             timeout=duration + 15)
    taken = _deploy("2.1.0")
    assert taken.returncode == 0, taken.stdout[-3000:]
    print(f"a dead holder's lock freed {(expires - killed).total_seconds():.0f}s after the kill "
          f"({spec.lease_duration_seconds}s lease, renewed {(killed - spec.renew_time).total_seconds():.0f}s before)")
    assert (expires - killed).total_seconds() <= duration
    assert _image(k8s) == "localhost/colors:2.1.0"


def test_a_release_that_lost_the_lock_writes_nothing_more(k8s, good_release):
    """Fencing: the lock is taken from a running release without touching its Deployment (a run that took over a
    lease it let lapse, a person at the Lease). At its next renewal the release stops naming the new holder, and
    writes nothing after that: no rollback of its own, no ledger entry."""
    _, apps, api = k8s
    version, since = "2.5.2-drill-never-ready", _now()
    release = _start_release(version, "-e", "app_release_lock_duration=15",
                             "-e", "app_release_progress_deadline_seconds=60")
    try:
        wait_for("the release to roll out its pods", lambda: _image(k8s) == f"localhost/colors:{version}", timeout=120)
        lease = client.CoordinationV1Api(api).read_namespaced_lease("colors-release", NS)
        holder = lease.spec.holder_identity
        lease.spec.holder_identity = "oncall@laptop/run-1"
        client.CoordinationV1Api(api).replace_namespaced_lease("colors-release", NS, lease)
        taken = time.monotonic()
        generation = apps.read_namespaced_deployment("colors", NS).metadata.generation
        out, _ = release.communicate(timeout=60)
        stopped = time.monotonic() - taken
    finally:
        release.kill()
    said = " ".join(out.split())
    assert release.returncode != 0
    assert f"This run ({holder}) lost the release lock" in said and "held by oncall@laptop/run-1" in said, said[-3000:]
    assert "Restored" not in said and "is released" not in said
    print(f"the fenced release stopped {stopped:.1f}s after its lock was taken (renewal every 5s)")
    deployment = apps.read_namespaced_deployment("colors", NS)
    assert deployment.metadata.generation == generation and _image(k8s) == f"localhost/colors:{version}"
    assert [e for e in _ledger(k8s) if e["started"] >= since] == []
    assert _lease(k8s).holder_identity == "oncall@laptop/run-1"  # its unlock left the lock to its holder
    client.CoordinationV1Api(api).delete_namespaced_lease("colors-release", NS)
    assert _deploy("2.1.0").returncode == 0 and _image(k8s) == "localhost/colors:2.1.0"


def test_an_interrupted_release_converges_when_run_again(k8s, good_release):
    _, apps, _ = k8s
    # An interrupted run: the new template was applied, then the run died before its verdict.
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "colors", "image": "localhost/colors:2.4.0"}]},
                                   "metadata": {"labels": {"app.kubernetes.io/version": "2.4.0"}}}},
             "metadata": {"labels": {"app.kubernetes.io/version": "2.4.0"}}}
    apps.patch_namespaced_deployment("colors", NS, patch)
    result = _deploy("2.4.0")
    assert result.returncode == 0, result.stdout[-3000:]
    deployment = apps.read_namespaced_deployment("colors", NS)
    assert deployment.spec.template.spec.containers[0].image == "localhost/colors:2.4.0"
    assert deployment.status.ready_replicas == 2


def test_the_release_report_reads_the_ledger_back(k8s, good_release):
    ledger = [e for e in _ledger(k8s) if e.get("finished")]
    result = ansible_playbook("release_report.yml", "-i", "inventories/local", "-e", "app_release_report_days=3650")
    assert result.returncode == 0, result.stdout[-3000:]
    releases = [e for e in ledger if e["strategy"] != "manual-rollback"]
    failed = [e for e in releases if e["verdict"] in ("failed", "rolled_back", "aborted")]
    assert f"releases: {len(releases)}" in result.stdout and f"failed: {len(failed)}" in result.stdout
    assert len(failed) >= 3  # the three drills of this module were recorded as failures
    assert "mean_time_to_restore_seconds:" in result.stdout and recap(result)["changed"] == 0
    assert any(e.get("committed") == COMMITTED and e["version"] == "2.1.0" for e in ledger), "no commit time recorded"
    assert "lead_time_seconds: null" not in result.stdout
    before, serving = _ledger(k8s), _image(k8s)
    wrong = _deploy("2.1.1", COLORS_RELEASE_COMMITTED="yesterday")  # refused before anything changes
    said = " ".join(wrong.stdout.split())
    assert wrong.returncode != 0 and 'app_release_committed="yesterday"' in said, said[-2000:]
    assert "the UTC time of the release's commit like 2026-12-06T09:30:00Z, or empty" in said
    assert _ledger(k8s) == before and _image(k8s) == serving


@pytest.fixture
def smoke_endpoint():
    """An HTTP endpoint standing in for the released service's URL; the test sets its answer."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    state = {"status": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(state["status"])
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state, f"http://127.0.0.1:{server.server_port}/readyz"
    server.shutdown()


def test_a_failing_http_smoke_check_rolls_the_release_back(k8s, good_release, smoke_endpoint):
    state, url = smoke_endpoint
    state["status"] = 503
    before = _image(k8s)
    result = _deploy("2.5.0", "-e", f"app_release_smoke_url={url}")
    assert result.returncode != 0
    out = " ".join(result.stdout.split())
    assert f"failed gate http-smoke: GET {url} answered 503, expected 200" in out
    assert f"Restored {before}" in out and _image(k8s) == before
    state["status"] = 200
    passed = _deploy("2.5.0", "-e", f"app_release_smoke_url={url}")
    assert passed.returncode == 0, passed.stdout[-3000:]
    assert _image(k8s) == "localhost/colors:2.5.0"


def test_a_deploy_freeze_refuses_releases_and_lets_rollbacks_through(k8s, good_release):
    """`make freeze` ("stop the line"): every release is refused before anything changes, naming the freeze; a
    rollback goes through; a release that must go out anyway says why, and the ledger keeps it; an inventory change
    window refuses the same way; `make unfreeze` lifts it."""
    _, apps, _ = k8s
    reason = "INC-42: error budget burnt, don't ship"  # quoting survives the make target
    missing = run(["make", "--no-print-directory", "freeze"], ENV="local", REASON="")
    assert missing.returncode != 0 and "allowed - frozen with a reason" in " ".join(missing.stdout.split())
    # What the earlier tests of the module left serving (a good release): the rollback must leave it.
    served = next(e for e in reversed(_ledger(k8s)) if e["verdict"] == "succeeded")
    assert served["image"] == _image(k8s)
    frozen = run(["make", "--no-print-directory", "freeze"], ENV="local", REASON=reason, UNTIL="")
    assert frozen.returncode == 0, frozen.stdout[-3000:]
    try:
        since, before = _now(), apps.read_namespaced_deployment("colors", NS)
        refused = _deploy("2.6.0")
        said = " ".join(refused.stdout.split())
        assert refused.returncode != 0
        assert re.search(r"Releases to local are frozen \(declared by \S+, since 20\d\d-", said), said[-3000:]
        assert f"until it is lifted): {reason}. Nothing was changed. Allowed during a freeze: rollback.yml" in said
        assert "release anyway with -e" in said and "app_release_freeze_override=" in said
        after = apps.read_namespaced_deployment("colors", NS)
        assert after.metadata.generation == before.metadata.generation and _lease(k8s) is None
        assert [e for e in _ledger(k8s) if e["started"] >= since] == []
        rolled = ansible_playbook("rollback.yml", *ARGS)
        assert rolled.returncode == 0, rolled.stdout[-3000:]
        [rollback] = [e for e in _ledger(k8s) if e["started"] >= since]  # went through, and is on the record
        assert (rollback["strategy"], rollback["verdict"]) == ("manual-rollback", "succeeded"), rollback
        assert _image(k8s) == rollback["image"] != served["image"]
        hotfix = _deploy("2.1.2", "-e", "app_release_freeze_override='INC-42 fix'")  # as the refusal says
        assert hotfix.returncode == 0, hotfix.stdout[-3000:]
        assert _image(k8s) == "localhost/colors:2.1.2"
        assert _ledger(k8s)[-1]["freeze_override"] == "INC-42 fix"
    finally:
        lifted = run(["make", "--no-print-directory", "unfreeze"], ENV="local")
        assert lifted.returncode == 0, lifted.stdout[-3000:]
    now = datetime.datetime.now(datetime.UTC)
    window = {"start": (now - datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "end": (now + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"), "reason": "year-end freeze"}
    windowed = _deploy("2.6.0", "-e", json.dumps({"app_release_freeze_windows": [window]}))
    assert windowed.returncode != 0
    assert "are frozen (change window of the inventory" in " ".join(windowed.stdout.split())
    assert _deploy("2.1.0").returncode == 0  # lifted: releases go out again


def _component_pid(name: str) -> int:
    status = json.loads(run([sys.executable, "localplatform/platformctl.py", "status"]).stdout)
    return status["components"][name]["pid"]


def test_an_api_server_gone_during_a_release_stops_it_in_one_line_and_the_same_command_again_converges(
        k8s, good_release):
    """The API server killed while a release watches its rollout (kwok held still, so the rollout is mid-way): past
    the outage tolerance (5 s here; 60 s by default) the run fails in one line, writing nothing more; once the platform
    has restarted the API server and the failed run's lock has expired (a 20 s lease here), the same command
    releases the version."""
    version, kwok, duration = "2.6.1", _component_pid("kwok"), 20
    os.kill(kwok, signal.SIGSTOP)  # the simulated nodes stop moving: the new pods stay pending
    try:
        release = _start_release(version, "-e", "app_release_api_outage_tolerance=5",
                                 "-e", f"app_release_lock_duration={duration}")
        try:
            wait_for("the release to write its Deployment", lambda: _image(k8s) == f"localhost/colors:{version}",
                     timeout=120)
            before = len(_ledger(k8s))
            os.kill(_component_pid("kube-apiserver"), signal.SIGKILL)
            out, _ = release.communicate(timeout=180)
        finally:
            if release.poll() is None:
                _kill_tree(release.pid)
        said = " ".join(out.split())
        assert release.returncode != 0
        assert f"The Kubernetes API server stopped answering during the release of {version}: a read" in said, \
            said[-3000:]
        assert "This run stops and writes nothing more" in said and "run the same command again" in said
    finally:
        os.kill(kwok, signal.SIGCONT)
        up = run([sys.executable, "localplatform/platformctl.py", "up"], timeout=300)
    assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
    assert len(_ledger(k8s)) == before, "the run recorded a verdict it could not have known"
    spec = _lease(k8s)  # the failed run could not give its lock back: the API server was away
    if spec is not None:
        expires = spec.renew_time + datetime.timedelta(seconds=spec.lease_duration_seconds)
        wait_for("the failed run's lock to expire", lambda: datetime.datetime.now(datetime.UTC) > expires,
                 timeout=duration + 15)
    again = _deploy(version)
    assert again.returncode == 0, again.stdout[-3000:]
    assert _image(k8s) == f"localhost/colors:{version}" and _ledger(k8s)[-1]["verdict"] == "succeeded"
