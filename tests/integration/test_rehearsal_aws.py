"""The staging rehearsal's AWS phases (tools/rehearsal.py --until infrastructure): staging's account set up, IAM
enforced in it, staging's Terraform applied by its administrator. They touch neither the cluster nor the local
environment's account, so `make test` runs them beside the tests that use those (tools/run_suite.py: the side
lane); test_rehearsal.py then resumes the run from here, alone.

Each assertion reads back the local AWS API: the account's resources as Terraform left them, and the enforcement."""

from __future__ import annotations

import json

import boto3
import pytest
from helpers import PLATFORM, STATE, run

pytestmark = pytest.mark.platform
ACCOUNT, REGION = "111111111111", "eu-west-1"
MOTO = f"http://127.0.0.1:{PLATFORM['ports']['moto']}"


@pytest.fixture(scope="module")
def paused(execution_environment):
    """The AWS phases, their playbooks run from the operations toolchain; what the run keeps for its resumption."""
    result = run(["python", "tools/rehearsal.py", "--until", "infrastructure"], timeout=1800,
                 COLORS_OPS_VENV=str(execution_environment))
    print(result.stdout[-4000:])
    assert result.returncode == 0, (result.stdout + result.stderr)[-8000:]
    return json.loads((STATE / "rehearsal" / "state.json").read_text()), result.stdout


def test_the_run_pauses_after_the_infrastructure_with_what_the_later_phases_need(paused):
    saved, out = paused
    assert saved["paused"] == "infrastructure"
    assert list(saved["timings"]) == ["account", "infrastructure"]
    assert {"administrator", "awx", "enforced"} <= set(saved["state"])
    assert "IAM enforced" in out and "IAM enforcement switched off again" in out


def test_staging_cluster_is_applied_as_eks_has_it_in_staging_account(paused):
    saved, _ = paused
    eks = boto3.session.Session(region_name=REGION, **saved["state"]["administrator"]).client(
        "eks", endpoint_url=MOTO)
    cluster = eks.describe_cluster(name="colors-staging")["cluster"]
    assert cluster["arn"].startswith(f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/")
    assert cluster["accessConfig"]["authenticationMode"] == "API"
    entries = eks.list_access_entries(clusterName="colors-staging")["accessEntries"]
    roles = {entry.rsplit("/", 1)[1] for entry in entries}
    assert {"colors-staging-deploy", "colors-staging-infrastructure"} <= roles, roles
