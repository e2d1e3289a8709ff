"""Where the pipelines run: the operations toolchain as a runner has it, and the workflow files under a real GitHub
Actions engine (nektos/act) in the runner image of localplatform/runner/ (uid 1001, as on GitHub's runners).

- A fresh container as uid 1001, with no way to become root (no-new-privileges: sudo cannot elevate), installs the
  operations toolchain from the hashed runtime lock and runs an operation (`make kubeconfig ENV=staging`) against the
  EKS API of moto.
- act runs the deploy workflow's staging job unchanged: checkout (act's own), the setup-python and
  configure-aws-credentials stand-ins of .github/stand-ins (a real AssumeRoleWithWebIdentity against moto), `make
  kubeconfig`, then `make deploy`. The staging cluster that moto describes has no API server behind it, so the deploy
  step stops at the cluster check with its one line; the staging rehearsal gives it a cluster to reach."""

from __future__ import annotations

import re
import subprocess

import boto3
import pytest
import yaml
from colors_platform.workflows import action_pins, fake_oidc_token, job_steps, run_job, said, working_tree_tar
from helpers import PLATFORM, REPO, moto_client, run

pytestmark = pytest.mark.platform
MOTO = f"http://127.0.0.1:{PLATFORM['ports']['moto']}"
STAGING = yaml.safe_load((REPO / "inventories" / "staging" / "group_vars" / "all" / "main.yml").read_text())
REGION = STAGING["colors_aws_region"]
ACCOUNT = STAGING["colors_aws_account_id"]
DEPLOY_ROLE = f"arn:aws:iam::{ACCOUNT}:role/colors-staging-deploy"
REPOSITORY = "colors/colors-deploy"


@pytest.fixture(scope="module")
def runner_image() -> str:
    built = run(["python", "localplatform/runner/build_runner_image.py"], timeout=900)
    assert built.returncode == 0, built.stderr[-3000:]
    return built.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def staging_session() -> dict[str, str]:
    """Credentials of a session in the staging account of moto (where the deploy role's sessions land)."""
    creds = moto_client("sts", REGION).assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/colors-test-admin",
                                                   RoleSessionName="test")["Credentials"]
    return {"AWS_ACCESS_KEY_ID": creds["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
            "AWS_SESSION_TOKEN": creds["SessionToken"]}


@pytest.fixture(scope="module")
def staging_cluster(staging_session) -> str:
    """The staging EKS cluster as moto describes it, in the staging account."""
    eks = boto3.client("eks", endpoint_url=MOTO, region_name=REGION,
                       **{k.lower(): v for k, v in staging_session.items()})
    name = f"colors-{STAGING['colors_environment']}"
    eks.create_cluster(name=name, roleArn=f"arn:aws:iam::{ACCOUNT}:role/colors-staging-cluster",
                       resourcesVpcConfig={"subnetIds": []})
    yield eks.describe_cluster(name=name)["cluster"]["endpoint"]
    eks.delete_cluster(name=name)


def test_the_operations_targets_run_as_uid_1001_without_root(runner_image, staging_session, staging_cluster,
                                                              tmp_path):
    script = r"""
        set -eu
        echo "uid=$(id -u)"
        if sudo -n true 2>/dev/null; then echo "became root"; else echo "cannot become root"; fi
        mkdir colors && tar -x -C colors && cd colors
        start=$(date +%s.%N); make ops-toolchain; end=$(date +%s.%N)
        echo "ops-toolchain seconds: $(python3 -c "print(round($end - $start, 1))")"
        make kubeconfig ENV=staging
        cat "$HOME/.kube/config"
    """
    with open(working_tree_tar(tmp_path / "tree.tar"), "rb") as tree:
        result = subprocess.run(
            ["docker", "run", "-i", "--rm", "--network", "host", "--security-opt", "no-new-privileges",
             "-e", f"AWS_ENDPOINT_URL={MOTO}", *[f"--env={k}={v}" for k, v in staging_session.items()],
             runner_image, "bash", "-c", script],
            stdin=tree, capture_output=True, text=True, timeout=900, check=False)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert "uid=1001" in out and "cannot become root" in out
    assert "[ops-toolchain] creating the Python environment" in out
    assert "TASKS RECAP" in out  # profile_tasks: where the operation's time went
    print(re.search(r"ops-toolchain seconds: \S+", out).group(0))
    kubeconfig = yaml.safe_load(out[out.index("apiVersion: v1"):])
    assert kubeconfig["current-context"] == STAGING["colors_kube_context"]
    assert kubeconfig["clusters"][0]["cluster"]["server"] == staging_cluster
    assert kubeconfig["users"][0]["user"]["exec"]["args"][-4:] == ["--cluster-name", "colors-staging", "--output",
                                                                   "json"]


def test_the_deploy_workflows_staging_job_runs_under_act_as_uid_1001(runner_image, staging_cluster, tmp_path):
    result = run_job("deploy.yml", "staging", runner_image, tmp_path, inputs={"version": "0.1.0", "promote": "false"},
                     variables={"AWS_DEPLOY_ROLE_ARN": DEPLOY_ROLE, "AWS_REGION": REGION},
                     env={"AWS_ENDPOINT_URL": MOTO,
                          "COLORS_STAND_IN_OIDC_TOKEN": fake_oidc_token(REPOSITORY, "staging")})
    out = result.stdout + result.stderr
    done = job_steps(out)
    assert done.get("Write the kubeconfig of the staging EKS cluster") == "Success", out[-5000:]
    # The job held the deploy role's session, assumed with its web identity token.
    assert f"Assumed {DEPLOY_ROLE} as arn:aws:sts::{ACCOUNT}:assumed-role/colors-staging-deploy/" in out
    setup_python = action_pins("deploy.yml", "staging")["actions/setup-python"]
    assert done.get(f"actions/setup-python@{setup_python}") == "Success"
    assert "[ops-toolchain] creating the Python environment /home/runner/.cache/colors-deploy/ops-" in out
    assert "[toolchain]" not in out and "needs root" not in out
    # The deploy step ran from the operations toolchain and stopped where the staging cluster is not reachable.
    assert done.get("Deploy to staging (rolls back on its own when a health gate fails)") == "Failure", out[-5000:]
    assert re.search(r"The Kubernetes API server of the staging environment is unreachable with kubeconfig "
                     r"\S+ and context colors-staging", said(out)), out[-5000:]
    assert result.returncode != 0


def test_the_ci_workflows_lint_job_passes_under_act_as_uid_1001(runner_image, tmp_path):
    """A whole job, end to end: the development Python set installed as the runner's user, then every linter."""
    result = run_job("ci.yml", "lint", runner_image, tmp_path, event="push")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-5000:]
    assert job_steps(out).get("ansible-lint (production profile), yamllint, ruff") == "Success", out[-5000:]
    assert "[toolchain] creating the Python environment /home/runner/.cache/colors-deploy/venv-" in out
    assert "Profile 'production' was required, and it passed." in out and "All checks passed!" in out
