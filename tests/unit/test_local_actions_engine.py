"""Unit tests of colors_platform.workflows, the helpers that run the workflow files under act: which actions a job
needs stand-ins for, how a job's steps ended, the stand-in OIDC token's claims, the working tree's tar."""

from __future__ import annotations

import base64
import json
import tarfile

from colors_platform import workflows


def test_the_actions_of_a_job_are_its_steps_uses_with_their_pinned_shas():
    pins = workflows.action_pins("deploy.yml", "staging")
    assert set(pins) == {"actions/checkout", "actions/setup-python", "aws-actions/configure-aws-credentials"}
    assert all(len(sha) == 40 for sha in pins.values())
    # Every action of the jobs the tests run has a stand-in.
    for workflow, job in (("deploy.yml", "staging"), ("ci.yml", "lint")):
        for action in set(workflows.action_pins(workflow, job)) - {"actions/checkout"}:
            assert (workflows.STAND_INS / action / "action.yml").is_file(), action
            assert "stand-in" in (workflows.STAND_INS / action / "README.md").read_text().lower()


def test_job_steps_reads_how_each_main_step_ended_and_said_drops_acts_prefixes():
    out = ("[deploy/staging]   ✅  Success - Main Write the kubeconfig of the staging EKS cluster [49.9s]\n"
           "[deploy/staging]   | msg: 'The Kubernetes API server of the staging environment is unreachable\n"
           "[deploy/staging]   |     with kubeconfig x'\n"
           "[deploy/staging]   ❌  Failure - Main Deploy to staging [3.1s]\n")
    assert workflows.job_steps(out) == {"Write the kubeconfig of the staging EKS cluster": "Success",
                                        "Deploy to staging": "Failure"}
    assert "staging environment is unreachable with kubeconfig x'" in workflows.said(out)


def test_the_stand_in_token_carries_githubs_claims_for_the_environment():
    token = workflows.fake_oidc_token("colors/colors-deploy", "prod")
    _, claims, _ = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    assert claims["sub"] == "repo:colors/colors-deploy:environment:prod" and claims["aud"] == "sts.amazonaws.com"
    assert claims["iss"] == "https://token.actions.githubusercontent.com"


def test_the_working_tree_tar_is_owned_by_the_runner_and_holds_no_ignored_file(tmp_path):
    with tarfile.open(workflows.working_tree_tar(tmp_path / "tree.tar")) as tar:
        members = tar.getmembers()
    names = {m.name for m in members}
    assert "Makefile" in names and "requirements/runtime.txt" in names
    assert not any(n.startswith(".platform/") or n.startswith(".git/") for n in names)
    assert {(m.uid, m.gid) for m in members} == {(1001, 1001)}
