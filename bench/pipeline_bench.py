#!/usr/bin/env python3
"""Pipeline benchmark: jobs of the workflow files run by act in the runner image (uid 1001), each beside the same
make targets run directly on this machine, both from nothing (a fresh Python environment, an empty pip cache), as
ratios - what the Actions engine and the runner container add.

    make bench-pipelines

  deploy.yml staging job   checkout, setup-python, the deploy role assumed (STS against moto), make kubeconfig,
                           make deploy (which stops at the cluster check: moto's EKS endpoint has no API server)
                           beside `make kubeconfig` + `make deploy` with ENV=staging on the host
  ci.yml lint job          beside `make lint` on the host
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "localplatform"), str(REPO / "localplatform" / "runner")]
from build_runner_image import build as runner_image  # noqa: E402 - beside the project, not on the path
from colors_platform.config import Config  # noqa: E402
from colors_platform.workflows import fake_oidc_token, job_steps, run_job  # noqa: E402

PLATFORM = Config.load()
MOTO = f"http://127.0.0.1:{PLATFORM.ports['moto']}"
STAGING = yaml.safe_load((REPO / "inventories" / "staging" / "group_vars" / "all" / "main.yml").read_text())
REGION, ACCOUNT = STAGING["colors_aws_region"], STAGING["colors_aws_account_id"]
ROLE = f"arn:aws:iam::{ACCOUNT}:role/colors-staging-deploy"


def row(name: str, ours: float, baseline_name: str, baseline: float) -> None:
    print(f"  {name:<44} {ours:8.1f}s   {baseline_name:<44} {baseline:8.1f}s   {ours / baseline:6.2f}x", flush=True)


def staging_session() -> dict[str, str]:
    sts = boto3.client("sts", endpoint_url=MOTO, region_name=REGION, aws_access_key_id="testing",
                       aws_secret_access_key="testing")  # noqa: S106 # pragma: allowlist secret - moto's dummy pair
    creds = sts.assume_role(RoleArn=ROLE, RoleSessionName="bench")["Credentials"]
    return {"AWS_ACCESS_KEY_ID": creds["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
            "AWS_SESSION_TOKEN": creds["SessionToken"]}


def timed_job(workflow: str, job: str, image: str, **kwargs) -> tuple[float, str, int]:
    with tempfile.TemporaryDirectory(prefix="colors-act-") as tmp:
        start = time.monotonic()
        result = run_job(workflow, job, image, Path(tmp), **kwargs)
        elapsed = time.monotonic() - start
    return elapsed, result.stdout + result.stderr, result.returncode


def timed_make(*targets: list[str], env: dict[str, str]) -> float:
    """Seconds the make invocations take, one after the other (a failing one, as the deploy's cluster check, too)."""
    start = time.monotonic()
    for argv in targets:
        subprocess.run(["make", "--no-print-directory", *argv], cwd=REPO, env=env, capture_output=True, check=False)
    return time.monotonic() - start


def main() -> int:
    image = runner_image()
    session = staging_session()
    eks = boto3.client("eks", endpoint_url=MOTO, region_name=REGION,
                       **{k.lower(): v for k, v in session.items()})
    eks.create_cluster(name="colors-staging", roleArn=f"arn:aws:iam::{ACCOUNT}:role/colors-staging-cluster",
                       resourcesVpcConfig={"subnetIds": []})
    try:
        print(f"pipeline jobs under act (runner image {image}) beside the same make targets on this machine, both "
              "from a fresh Python environment and an empty pip cache:")
        act_deploy, out, _ = timed_job(
            "deploy.yml", "staging", image, inputs={"version": "0.1.0", "promote": "false"},
            variables={"AWS_DEPLOY_ROLE_ARN": ROLE, "AWS_REGION": REGION},
            env={"AWS_ENDPOINT_URL": MOTO, "COLORS_STAND_IN_OIDC_TOKEN": fake_oidc_token("colors/colors-deploy",
                                                                                         "staging")})
        if job_steps(out).get("Write the kubeconfig of the staging EKS cluster") != "Success":
            sys.exit(f"the deploy job did not get past its kubeconfig step:\n{out[-3000:]}")
        with tempfile.TemporaryDirectory(prefix="colors-host-") as tmp:
            env = dict(os.environ, **session, AWS_ENDPOINT_URL=MOTO, AWS_REGION=REGION, PIP_CACHE_DIR=f"{tmp}/pip",
                       KUBECONFIG=f"{tmp}/kubeconfig")
            host_deploy = timed_make(["kubeconfig", "ENV=staging", f"OPS_VENV={tmp}/ops"],
                                     ["deploy", "ENV=staging", "VERSION=0.1.0", f"OPS_VENV={tmp}/ops"], env=env)
        row("deploy.yml staging job under act", act_deploy, "make kubeconfig + deploy, ENV=staging, host", host_deploy)

        act_lint, out, code = timed_job("ci.yml", "lint", image, event="push")
        if code != 0:
            sys.exit(f"the lint job failed under act:\n{out[-3000:]}")
        with tempfile.TemporaryDirectory(prefix="colors-host-") as tmp:
            host_lint = timed_make(["lint", f"VENV={tmp}/dev"], env=dict(os.environ, PIP_CACHE_DIR=f"{tmp}/pip"))
        row("ci.yml lint job under act", act_lint, "make lint, host", host_lint)
    finally:
        eks.delete_cluster(name="colors-staging")
    return 0


if __name__ == "__main__":
    sys.exit(main())
