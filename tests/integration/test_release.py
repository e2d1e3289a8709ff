"""The release engine on the real API server: each failure kind is rolled back automatically, manual
rollback reaches any recorded release, and every attempt lands in the release ledger."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ON_SIMULATED_NODES, RELEASE_ONLY, REPO, ansible_playbook, recap, run, tool_env, wait_for

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


def _deploy(version, *extra, **env):
    """A release as staging runs it, once good_release's first deploy bootstrapped the namespace."""
    return ansible_playbook("deploy.yml", *ARGS, *RELEASE_ONLY, "-e", f"app_release_version={version}", *extra, **env)


@pytest.fixture(scope="module")
def good_release(k8s):
    # The first as the local inventory runs it: bootstrap, then release.
    first = ansible_playbook("deploy.yml", *ARGS, "-e", "app_release_version=2.0.0")
    assert first.returncode == 0, first.stdout[-3000:]
    second = _deploy("2.1.0")
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
    since = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    release = subprocess.Popen(
        [str(Path(sys.executable).parent / "ansible-playbook"), "deploy.yml", *ARGS, *RELEASE_ONLY,
         "-e", f"app_release_version={version}", "-e", "app_release_progress_deadline_seconds=120"],
        cwd=REPO, env=tool_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for("the release to roll out its pods", lambda: _image(k8s) == f"localhost/colors:{version}", timeout=120)
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
    assert f"Release {version} (localhost/colors:{version}) failed gate changed-during-release" in said
    assert f"its image is now {before} (this release applied localhost/colors:{version})" in said
    assert "restored nothing and recorded no success" in said and "is released" not in said
    assert _image(k8s) == before
    ledger = _ledger(k8s)
    (attempt,) = [e for e in ledger if e.get("version") == version and e["started"] >= since]
    assert attempt["verdict"] == "aborted" and attempt["gate"] == "changed-during-release"
    restorations = [e for e in ledger if e["strategy"] == "manual-rollback" and e["started"] > attempt["started"]]
    assert [(e["verdict"], e["image"]) for e in restorations] == [("succeeded", before)]


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
