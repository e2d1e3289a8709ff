"""The Terraform CLI configuration installs hashicorp/aws from the machine's mirror (no registry here)."""

from __future__ import annotations

import re

from helpers import STATE, run


def test_terraform_init_installs_the_aws_provider_from_the_mirror(tmp_path):
    rc = STATE / "terraform.rc"
    assert rc.exists(), "run `make toolchain` to write .platform/terraform.rc"
    (tmp_path / "main.tf").write_text(
        'terraform {\n  required_providers {\n    aws = {\n      source  = "hashicorp/aws"\n'
        '      version = "~> 5.100"\n    }\n  }\n}\n')
    result = run(["terraform", f"-chdir={tmp_path}", "init", "-input=false", "-no-color"],
                 TF_CLI_CONFIG_FILE=str(rc))
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Installed hashicorp/aws v5\.\d+\.\d+|Using hashicorp/aws v5\.\d+\.\d+", result.stdout)
    lock = (tmp_path / ".terraform.lock.hcl").read_text()
    assert 'provider "registry.terraform.io/hashicorp/aws"' in lock
