"""The staging rehearsal (`make rehearsal`, tools/rehearsal.py) as `make test` runs it: inventories/staging through
an overlay that moves endpoints only, from staging's Terraform apply to moto with IAM enforced, to the deploy
workflow's staging job under act releasing onto the worker node from the registry, on a real PostgreSQL. It runs
alone (tools/run_suite.py): it takes the cluster over as staging's. Its AWS phases ran before, beside other tests
(test_rehearsal_aws.py); it resumes from there.

Each assertion reads back what the rehearsal left in the real systems: the AWS API, the cluster, the audit log."""

from __future__ import annotations

import json

import pytest
from helpers import APP_VERSION, PLATFORM, STATE, run

pytestmark = pytest.mark.platform
ACCOUNT, REGION = "111111111111", "eu-west-1"


@pytest.fixture(scope="module")
def rehearsal(execution_environment):
    """The rehearsal, its playbooks run from the operations toolchain (what runners and AWX have): resumed after the
    AWS phases test_rehearsal_aws.py ran in the side lane, or whole when it did not run."""
    result = run(["python", "tools/rehearsal.py", "--resume"], timeout=2400,
                 COLORS_OPS_VENV=str(execution_environment))
    print(result.stdout[-6000:])
    assert result.returncode == 0, (result.stdout + result.stderr)[-8000:]
    return json.loads((STATE / "rehearsal" / "result.json").read_text()), result.stdout


def test_every_phase_of_the_rehearsal_ran(rehearsal):
    summary, out = rehearsal
    assert list(summary["timings"]) == ["account", "infrastructure", "database", "publish", "bootstrap",
                                        "monitoring", "deploy", "verify", "drills"]
    assert "IAM enforced" in out
    # bootstrap gave the application's pods the security group the database admits, found in staging's account
    assert "which the database admits (SecurityGroupPolicies)" in out


def test_the_deploy_workflows_staging_job_ran_every_step(rehearsal):
    summary, _ = rehearsal
    steps = summary["deploy_steps"]
    assert steps.get("Write the kubeconfig of the staging EKS cluster") == "Success", steps
    assert steps.get("Deploy to staging (rolls back on its own when a health gate fails)") == "Success", steps


def test_the_release_was_pulled_from_the_registry_and_serves_on_the_worker_node(rehearsal):
    summary, _ = rehearsal
    assert summary["version"] == APP_VERSION
    assert summary["pods"] and {p["node"] for p in summary["pods"]} == {PLATFORM["worker_node"]["name"]}


def test_the_drills_under_load_switched_restored_rolled_back_rotated_and_refused_without_a_failed_request(rehearsal):
    """As the deployer (AWX's identities): the Service's selector and ready endpoints, read back after each drill."""
    summary, _ = rehearsal
    drills, version = summary["drills"], summary["version"]
    (switched,) = drills["switch"]["versions"]
    assert switched.startswith(f"{version}-rehearsal-switch.i"), drills["switch"]
    # The crash-looping release failed a gate, the Service stayed where it was, on the release before it.
    assert drills["crash"]["gate"] == "pod-crashloop", drills["crash"]
    assert drills["crash"]["versions"] == [switched] and drills["crash"]["selector"] == drills["switch"]["selector"]
    assert drills["crash"]["ready_endpoints"] >= 2, drills["crash"]
    assert drills["rollback"]["versions"] == [version]
    assert drills["rollback"]["selector"] != drills["switch"]["selector"], "rollback.yml did not switch colours"
    # ... and it is on the record as a restoration, not a change (the release report counts no deploy for it)
    assert drills["rollback"]["recorded"] == {"version": version, "strategy": "blue_green", "verdict": "succeeded",
                                              "rollback": True}
    # rotate-secrets.yml: the login not in use got a new password; the pods rolled onto it, over TLS.
    assert drills["rotation"]["versions"] == [version]
    assert drills["rotation"]["connections"] and all(
        user == "colors_app_clone" and tls for user, tls in drills["rotation"]["connections"]), drills["rotation"]
    # A release whose migration is not expand-only went out; rollback.yml was refused naming the migration and the
    # release that ran it, and the Service stayed on that release.
    contract = drills["contract"]
    (contracting,) = contract["versions"]
    assert contracting.startswith(f"{version}-drill-contract.i"), contract
    refused = contract["rollback"]
    assert refused["exit"] != 0 and refused["release"] == contracting, refused
    assert refused["migration"] == "0004_contract_palette_author_required.sql", refused
    assert refused["selector"] == contract["selector"] and refused["versions"] == [contracting], refused
    load = drills["load"]
    assert load["requests"] >= 10 * load["seconds"] and load["failed"] == 0, load
    # Staging's canary judge decided every release that switched: the new colour under the load, against the colour
    # serving before it, each side with its own requests (the crash-looping release never switched: not judged).
    assert drills["crash"]["judge"] is None, drills["crash"]
    for step in ("switch", "rollback", "rotation", "contract"):
        judge = drills[step]["judge"]
        assert judge and judge["state"] == "passed" and judge["looks"] >= 1, (step, judge)
        assert {m: o["outcome"] for m, o in judge["metrics"].items()} == {"error-ratio": "pass",
                                                                          "latency-p99": "pass"}, (step, judge)
        assert all(o["canary"] >= 200 and o["baseline"] >= 200 for o in judge["metrics"].values()), (step, judge)
