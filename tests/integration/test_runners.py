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

import base64
import json
import re
import subprocess
import tarfile
from pathlib import Path

import boto3
import pytest
import yaml
from helpers import PLATFORM, REPO, moto_client, run, tool_env

pytestmark = pytest.mark.platform
MOTO = f"http://127.0.0.1:{PLATFORM['ports']['moto']}"
STAGING = yaml.safe_load((REPO / "inventories" / "staging" / "group_vars" / "all" / "main.yml").read_text())
REGION = STAGING["colors_aws_region"]
ACCOUNT = STAGING["colors_aws_account_id"]
DEPLOY_ROLE = f"arn:aws:iam::{ACCOUNT}:role/colors-staging-deploy"


def workflow_action_pins(workflow: str, job: str) -> dict[str, str]:
    """The actions the job's steps use, with the SHA each is pinned to."""
    steps = yaml.safe_load((REPO / ".github" / "workflows" / workflow).read_text())["jobs"][job]["steps"]
    return dict(step["uses"].split("@") for step in steps if "uses" in step)


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


def tree_tar(dest: Path) -> Path:
    """The working tree (tracked and new files, not the ignored ones), owned by uid 1001."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split("\n")
    with tarfile.open(dest, "w") as tar:
        for name in filter(None, files):
            if (REPO / name).exists():
                info = tar.gettarinfo(REPO / name, arcname=name)
                info.uid = info.gid = 1001
                info.uname = info.gname = "runner"
                with open(REPO / name, "rb") if info.isfile() else open("/dev/null", "rb") as f:
                    tar.addfile(info, f if info.isfile() else None)
    return dest


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
    with open(tree_tar(tmp_path / "tree.tar"), "rb") as tree:
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


def fake_oidc_token(environment: str) -> str:
    """A token with GitHub's claims for a job of the environment (moto does not check its signature)."""
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    claims = {"iss": "https://token.actions.githubusercontent.com", "aud": "sts.amazonaws.com",
              "sub": f"repo:colors/colors-deploy:environment:{environment}", "environment": environment}
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.{part({'stand-in': True})}"


def act(workflow: str, job: str, image: str, tmp_path: Path, inputs: dict[str, str], variables: dict[str, str],
        env: dict[str, str], event: str = "workflow_dispatch") -> subprocess.CompletedProcess:
    """act runs the job of the workflow on a copy of the working tree, with the stand-ins of .github/stand-ins."""
    tree = tmp_path / "tree"
    tree.mkdir()
    with tarfile.open(tree_tar(tmp_path / "tree.tar")) as tar:
        tar.extractall(tree, filter="data")
    git = ["git", "-c", "user.email=ci@colors.local", "-c", "user.name=ci"]
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "the working tree"]):
        subprocess.run([*git, *argv], cwd=tree, check=True, capture_output=True)
    stand_ins = REPO / ".github" / "stand-ins"
    argv = [str(REPO / ".platform" / "bin" / "act"), event, "-W", f".github/workflows/{workflow}",
            "-j", job, "-P", f"ubuntu-24.04={image}", "--pull=false", "--action-offline-mode"]
    for action, sha in workflow_action_pins(workflow, job).items():
        if action != "actions/checkout":  # act copies the tree itself
            assert (stand_ins / action / "action.yml").is_file(), f"{action} has no stand-in in {stand_ins}"
            argv += ["--local-repository", f"{action}@{sha}={stand_ins / action}"]
    for flag, values in (("--input", inputs), ("--var", variables), ("--env", env)):
        for key, value in values.items():
            argv += [flag, f"{key}={value}"]
    return subprocess.run(argv, cwd=tree, env=tool_env(), capture_output=True, text=True, timeout=1500,
                          check=False)


def steps(output: str) -> dict[str, str]:
    """Each main step of the job and how it ended (Success/Failure)."""
    return dict((name.strip(), outcome) for outcome, name in re.findall(r"(Success|Failure) - Main (.+?)(?: \[|$)",
                                                                         output, flags=re.M))


def test_the_deploy_workflows_staging_job_runs_under_act_as_uid_1001(runner_image, staging_cluster, tmp_path):
    result = act("deploy.yml", "staging", runner_image, tmp_path, inputs={"version": "0.1.0", "promote": "false"},
                 variables={"AWS_DEPLOY_ROLE_ARN": DEPLOY_ROLE, "AWS_REGION": REGION},
                 env={"AWS_ENDPOINT_URL": MOTO, "COLORS_STAND_IN_OIDC_TOKEN": fake_oidc_token("staging")})
    out = result.stdout + result.stderr
    done = steps(out)
    assert done.get("Write the kubeconfig of the staging EKS cluster") == "Success", out[-5000:]
    # The job held the deploy role's session, assumed with its web identity token.
    assert f"Assumed {DEPLOY_ROLE} as arn:aws:sts::{ACCOUNT}:assumed-role/colors-staging-deploy/" in out
    setup_python = workflow_action_pins("deploy.yml", "staging")["actions/setup-python"]
    assert done.get(f"actions/setup-python@{setup_python}") == "Success"
    assert "[ops-toolchain] creating the Python environment /home/runner/.cache/colors-deploy/ops-" in out
    assert "[toolchain]" not in out and "needs root" not in out
    # The deploy step ran from the operations toolchain and stopped where the staging cluster is not reachable.
    assert done.get("Deploy to staging (rolls back on its own when a health gate fails)") == "Failure", out[-5000:]
    said = " ".join(re.sub(r"^\[[^]]+\]\s*\|?", "", line) for line in out.splitlines()).split()
    assert re.search(r"The Kubernetes API server of the staging environment is unreachable with kubeconfig "
                     r"\S+ and context colors-staging", " ".join(said)), out[-5000:]
    assert result.returncode != 0


def test_the_ci_workflows_lint_job_passes_under_act_as_uid_1001(runner_image, tmp_path):
    """A whole job, end to end: the development Python set installed as the runner's user, then every linter."""
    result = act("ci.yml", "lint", runner_image, tmp_path, inputs={}, variables={}, env={}, event="push")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-5000:]
    assert steps(out).get("ansible-lint (production profile), yamllint, ruff") == "Success", out[-5000:]
    assert "[toolchain] creating the Python environment /home/runner/.cache/colors-deploy/venv-" in out
    assert "Profile 'production' was required, and it passed." in out and "All checks passed!" in out
