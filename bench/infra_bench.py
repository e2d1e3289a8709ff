#!/usr/bin/env python3
"""Infrastructure benchmark: apply, no-change plan and destroy of the local environment against moto, through the
infrastructure role (ansible-playbook infrastructure.yml) beside the bare Terraform CLI, as ratios.

Run through `make bench-infra` (about 8 minutes: two full apply/destroy cycles). Both sides apply the same root
module with the same variables and backend to the local platform's moto server; the bare CLI uses its own state
key, so the two never share state. Most of the time is the AWS provider's own waiters (EKS, RDS, ALB, NAT), which
both sides pay; the difference is Ansible start-up, preflight validation and `terraform init` on every run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PLATFORM = yaml.safe_load((REPO / "localplatform" / "platform.yml").read_text())
TF = REPO / "terraform"
MOTO = f"http://127.0.0.1:{PLATFORM['ports']['moto']}"
REGION = PLATFORM["aws"]["region"]
ENV = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
           TF_CLI_CONFIG_FILE=str(REPO / ".platform" / "terraform.rc"),
           PATH=os.pathsep.join([str(REPO / ".platform" / "bin"), str(Path(sys.executable).parent),
                                 os.environ["PATH"]]))


def timed(argv: list[str], env: dict | None = None) -> float:
    start = time.monotonic()
    result = subprocess.run(argv, cwd=REPO, env=env or ENV, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    if result.returncode not in (0, 2):  # 2: `plan -detailed-exitcode` found changes
        sys.exit(f"benchmark step failed: {' '.join(argv)}\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    if "-detailed-exitcode" in argv and result.returncode == 2:
        sys.exit(f"the no-change plan found changes:\n{result.stdout[-3000:]}")
    return elapsed


def ours() -> dict[str, float]:
    play = [str(Path(sys.executable).parent / "ansible-playbook"), "infrastructure.yml", "-i", "inventories/local"]
    return {
        "apply (69 resources)": timed(play),
        "no-change run": timed(play),
        "destroy": timed([*play, "-e", "infrastructure_state=absent",
                          "-e", "infrastructure_destroy_confirmation=local"]),
    }


def bare_cli() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="colors-tf-bench-") as tmp:
        env = dict(ENV, TF_DATA_DIR=f"{tmp}/data", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")  # noqa: S106 - moto's dummy pair
        tf = ["terraform", f"-chdir={TF / 'stack'}"]
        variables = [f"-var-file={TF / 'environments/local/terraform.tfvars'}", f"-var=aws_region={REGION}",
                     f"-var=aws_endpoint_url={MOTO}", "-input=false", "-no-color"]
        init = [*tf, "init", "-input=false", "-no-color", f"-backend-config={TF / 'environments/local/backend.hcl'}",
                "-backend-config=key=bench/terraform.tfstate", f"-backend-config=region={REGION}",
                f'-backend-config=endpoints={{s3="{MOTO}"}}', "-backend-config=use_path_style=true",
                "-backend-config=skip_credentials_validation=true", "-backend-config=skip_requesting_account_id=true"]
        timed(init, env)
        return {
            "apply (69 resources)": timed([*tf, "apply", "-auto-approve", *variables], env),
            "no-change run": timed([*tf, "plan", "-detailed-exitcode", *variables], env),
            "destroy": timed([*tf, "destroy", "-auto-approve", *variables], env),
        }


def main() -> None:
    print("Infrastructure of the local environment against moto (seconds; ratio = ours / bare terraform)")
    print(f"  {'step':<24} {'infrastructure.yml':>18} {'bare terraform':>15} {'ratio':>7}")
    mine, baseline = ours(), bare_cli()
    for step in mine:
        print(f"  {step:<24} {mine[step]:17.1f}s {baseline[step]:14.1f}s {mine[step] / baseline[step]:6.2f}x")


if __name__ == "__main__":
    main()
