"""`infrastructure.yml` against the local AWS API: check mode plans without changing anything, a held state lock
refuses a second run, a killed run's lock is released the runbook's way (then the playbook applies and destroys),
and bad input stops before Terraform runs. (Verify and re-apply run in the infrastructure role's Molecule
scenario.)"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import pytest
from documented_commands import documented
from helpers import PLATFORM, REPO, STATE, ansible_playbook, moto_client, run, tool_env

pytestmark = pytest.mark.platform
TF = REPO / "terraform"
MOTO = f"http://127.0.0.1:{PLATFORM['ports']['moto']}"


def local_vpcs() -> list[str]:
    ec2 = moto_client("ec2")
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Project", "Values": ["colors"]},
                                      {"Name": "tag:Environment", "Values": ["local"]}])["Vpcs"]
    return [v["VpcId"] for v in vpcs]


def lock_objects() -> list[str]:
    s3 = moto_client("s3")
    listing = s3.list_objects_v2(Bucket=PLATFORM["aws"]["state_bucket"], Prefix="colors/local/")
    return [o["Key"] for o in listing.get("Contents", []) if o["Key"].endswith(".tflock")]


def test_check_mode_prints_the_plan_and_changes_nothing():
    before = local_vpcs()
    result = ansible_playbook("infrastructure.yml", "-i", "inventories/local", "--check")
    assert result.returncode == 0, result.stdout[-4000:]
    assert local_vpcs() == before, "check mode created or removed a VPC"
    if not before:  # the usual case: the local environment is applied only inside Molecule
        assert "module.network.aws_vpc.this will be created" in result.stdout
        assert "module.cluster.aws_eks_cluster.this will be created" in result.stdout
        assert "Plan: " in result.stdout and " to add" in result.stdout


def _apply_waiting_for_approval(data_dir: Path) -> subprocess.Popen:
    """A real second Terraform run that holds the local state lock: `terraform apply` waiting for its approval (its
    own session: a test can kill all of it)."""
    env = tool_env(TF_DATA_DIR=str(data_dir), TF_CLI_CONFIG_FILE=str(STATE / "terraform.rc"),
                   AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")  # noqa: S106 - moto's dummy pair
    stack = ["terraform", f"-chdir={TF / 'stack'}"]
    init = subprocess.run([*stack, "init", "-input=false", "-no-color",
                           f"-backend-config={TF / 'environments/local/backend.hcl'}",
                           f"-backend-config=region={PLATFORM['aws']['region']}",
                           f'-backend-config=endpoints={{s3="{MOTO}"}}', "-backend-config=use_path_style=true",
                           "-backend-config=skip_credentials_validation=true",
                           "-backend-config=skip_requesting_account_id=true"],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert init.returncode == 0, init.stdout + init.stderr
    holder = subprocess.Popen([*stack, "apply", "-no-color", f"-var-file={TF / 'environments/local/terraform.tfvars'}",
                               f"-var=aws_region={PLATFORM['aws']['region']}", f"-var=aws_endpoint_url={MOTO}"],
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True)
    # The approval prompt ends without a newline: read characters, not lines.
    chunks: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [chunks.put(c) for c in iter(lambda: holder.stdout.read(1), "")],
                     daemon=True).start()
    seen = ""
    try:
        while "Enter a value:" not in seen:
            seen += chunks.get(timeout=300)
    except BaseException:
        os.killpg(holder.pid, signal.SIGKILL)
        raise
    assert lock_objects(), "the waiting apply holds no lock object"
    return holder


@pytest.fixture
def held_lock(tmp_path):
    holder = _apply_waiting_for_approval(tmp_path / "holder")
    try:
        yield holder
    finally:
        if holder.poll() is None:
            holder.communicate("no\n", timeout=120)


def test_a_second_apply_is_refused_while_another_run_holds_the_state_lock(held_lock):
    result = ansible_playbook("infrastructure.yml", "-i", "inventories/local")
    assert result.returncode != 0
    assert "The Terraform state of local is locked by another run" in result.stdout
    assert "OperationTypeApply" in result.stdout, "the message names what the holder is doing"
    assert "terraform force-unlock" in result.stdout
    assert "Nothing was applied" in result.stdout
    assert local_vpcs() == [], "the refused run applied something"


def test_the_lock_is_released_when_the_holder_finishes(held_lock):
    held_lock.communicate("no\n", timeout=120)
    assert lock_objects() == []


def test_a_killed_apply_leaves_its_lock_which_the_runbook_releases(tmp_path):
    """An apply killed while it holds the state lock (its runner vanished) leaves the lock behind: the next run is
    refused naming the lock ID, and the runbook's way out - its own commands, run as written - releases it; then a
    plan and an apply go through and the environment is destroyed again."""
    holder = _apply_waiting_for_approval(tmp_path / "holder")
    os.killpg(holder.pid, signal.SIGKILL)  # terraform and its provider processes, at once
    holder.wait(timeout=60)
    assert lock_objects(), "the killed apply's lock is gone: nothing was left to recover from"
    refused = ansible_playbook("infrastructure.yml", "-i", "inventories/local")
    out = " ".join(refused.stdout.split())
    assert refused.returncode != 0 and "The Terraform state of local is locked by another run" in out, out[-3000:]
    lock_id = re.search(r"terraform force-unlock ([0-9a-f-]{36})", out).group(1)
    runbook = [c for c in documented() if c.startswith(("export TF_DATA_DIR=", "terraform -chdir=terraform/stack"))]
    assert len(runbook) == 2, runbook
    script = "\n".join(runbook).replace("<env>", "local").replace("<lock ID>", lock_id)
    unlocked = run(["bash", "-c", f"set -e\n{script}"], input="yes\n", AWS_ACCESS_KEY_ID="testing",
                   AWS_SECRET_ACCESS_KEY="testing", TF_CLI_CONFIG_FILE=str(STATE / "terraform.rc"))  # noqa: S106
    assert unlocked.returncode == 0, unlocked.stdout + unlocked.stderr
    assert lock_objects() == []
    try:
        planned = ansible_playbook("infrastructure.yml", "-i", "inventories/local", "--check")
        assert planned.returncode == 0, planned.stdout[-3000:]
        applied = ansible_playbook("infrastructure.yml", "-i", "inventories/local")
        assert applied.returncode == 0, applied.stdout[-3000:]
        assert local_vpcs(), "the apply after the recovery built nothing"
    finally:
        destroyed = ansible_playbook("infrastructure.yml", "-i", "inventories/local",
                                     "-e", "infrastructure_state=absent",
                                     "-e", "infrastructure_destroy_confirmation=local")
        assert destroyed.returncode == 0, destroyed.stdout[-3000:]
    assert local_vpcs() == []


def test_a_missing_backend_configuration_is_named_before_terraform_runs(tmp_path):
    copy = tmp_path / "terraform"
    shutil.copytree(TF, copy, ignore=shutil.ignore_patterns(".terraform-data", ".terraform"))
    (copy / "environments/local/backend.hcl").unlink()
    result = ansible_playbook("infrastructure.yml", "-i", "inventories/local",
                              "-e", f"infrastructure_terraform_dir={copy}")
    assert result.returncode != 0
    assert "The local environment has no complete Terraform configuration" in result.stdout
    assert "environments/local/backend.hcl" in result.stdout
    assert "Environments with both: prod, staging" in result.stdout
    assert not (copy / ".terraform-data").exists(), "Terraform ran although the configuration was incomplete"


@pytest.mark.parametrize("confirmation", [None, "prod"])
def test_destroy_needs_the_environment_name_as_confirmation(confirmation):
    extra = ["-e", f"infrastructure_destroy_confirmation={confirmation}"] if confirmation else []
    result = ansible_playbook("infrastructure.yml", "-i", "inventories/local",
                              "-e", "infrastructure_state=absent", *extra)
    assert result.returncode != 0
    assert "needs -e infrastructure_destroy_confirmation=local" in result.stdout
    assert "Nothing was destroyed" in result.stdout


def test_an_unknown_environment_is_refused_with_the_allowed_ones():
    result = ansible_playbook("infrastructure.yml", "-i", "inventories/local", "-e", "infrastructure_environment=qa")
    assert result.returncode != 0
    assert "infrastructure_environment" in result.stdout
    assert "local, staging, prod" in result.stdout
