"""Terraform: formatting, validation, per-environment variables, staging/prod parity, checkov, topology docs."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml
from helpers import PLATFORM, REPO, STATE, run, tfvars

TF = REPO / "terraform"
ENVIRONMENTS = ("local", "staging", "prod")
# Set by the infrastructure role from the inventory, not by tfvars.
FROM_INVENTORY = {"aws_region", "aws_endpoint_url"}
ROOTS = {"stack": TF / "stack", "bootstrap": TF / "bootstrap"}


def _tf_env(data_dir: Path) -> dict[str, str]:
    return {"TF_DATA_DIR": str(data_dir), "TF_CLI_CONFIG_FILE": str(STATE / "terraform.rc"), "TF_IN_AUTOMATION": "1"}


def declared_variables(root: Path) -> dict[str, bool]:
    """Variable name -> whether it has a default, for every `variable` block of a root module."""
    text = "\n".join(p.read_text() for p in sorted(root.glob("*.tf")))
    blocks = re.findall(r'^variable "(\w+)" \{\n(.*?)^\}', text, flags=re.S | re.M)
    return {name: bool(re.search(r"^\s+default\s*=", body, flags=re.M)) for name, body in blocks}


def test_terraform_files_are_formatted():
    result = run(["terraform", "fmt", "-check", "-recursive", "-diff", str(TF)])
    assert result.returncode == 0, f"run `terraform fmt -recursive terraform`:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_the_stack_validates_for_every_environment(environment, tmp_path):
    """Each environment initialises the one root module with its own data folder and validates it."""
    env = _tf_env(tmp_path / environment)
    init = run(["terraform", f"-chdir={ROOTS['stack']}", "init", "-backend=false", "-input=false", "-no-color"], **env)
    assert init.returncode == 0, init.stdout + init.stderr
    result = run(["terraform", f"-chdir={ROOTS['stack']}", "validate", "-no-color"], **env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "The configuration is valid" in result.stdout


def test_the_state_bootstrap_validates(tmp_path):
    env = _tf_env(tmp_path)
    init = run(["terraform", f"-chdir={ROOTS['bootstrap']}", "init", "-backend=false", "-input=false", "-no-color"],
               **env)
    assert init.returncode == 0, init.stdout + init.stderr
    result = run(["terraform", f"-chdir={ROOTS['bootstrap']}", "validate", "-no-color"], **env)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_each_environment_sets_exactly_the_declared_variables(environment):
    declared = declared_variables(ROOTS["stack"])
    assigned = set(tfvars(environment))
    required = {name for name, has_default in declared.items() if not has_default} - FROM_INVENTORY
    assert not required - assigned, f"{environment}/terraform.tfvars misses {sorted(required - assigned)}"
    undeclared = sorted(assigned - set(declared))
    assert not undeclared, f"{environment}/terraform.tfvars sets undeclared {undeclared}"
    owned = sorted(assigned & FROM_INVENTORY)
    assert not owned, f"{environment}/terraform.tfvars sets {owned}: the inventory owns them"
    assert tfvars(environment)["environment"] == f'"{environment}"'


def test_staging_and_prod_set_the_same_variables():
    staging, prod = set(tfvars("staging")), set(tfvars("prod"))
    assert staging == prod, f"only in staging: {sorted(staging - prod)}; only in prod: {sorted(prod - staging)}"


def test_every_environment_has_a_backend_with_locking():
    for environment in ENVIRONMENTS:
        backend = (TF / "environments" / environment / "backend.hcl").read_text()
        assert re.search(r"^use_lockfile\s*=\s*true", backend, flags=re.M), f"{environment}: no state locking"
        assert re.search(r"^encrypt\s*=\s*true", backend, flags=re.M), f"{environment}: state not encrypted"
        assert f'key          = "colors/{environment}/terraform.tfstate"' in backend


def test_the_local_backend_names_the_bucket_the_local_platform_creates():
    backend = (TF / "environments" / "local" / "backend.hcl").read_text()
    assert f'bucket       = "{PLATFORM["aws"]["state_bucket"]}"' in backend


def test_the_cluster_runs_the_kubernetes_minor_of_the_local_platform():
    minor = ".".join(PLATFORM["versions"]["kubernetes"].split(".")[:2])
    for environment in ENVIRONMENTS:
        assert tfvars(environment)["kubernetes_version"] == f'"{minor}"', environment


def checkov_report(tmp_path: Path) -> dict:
    checkov = shutil.which("checkov", path=os.pathsep.join([str(STATE / "bin"), os.environ["PATH"]]))
    assert checkov, "checkov is not installed (`make toolchain` links it into .platform/bin): this check did not run"
    result = run([checkov, "--directory", str(TF), "--framework", "terraform", "--output", "json", "--quiet",
                  "--compact", "--skip-download"], timeout=300)
    assert result.stdout.strip(), f"checkov printed nothing:\n{result.stderr[-2000:]}"
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report


def test_checkov_finds_no_unexplained_failure(tmp_path):
    report = checkov_report(tmp_path)
    summary = report["summary"]
    assert summary["resource_count"] >= 60, f"checkov scanned only {summary['resource_count']} resources"
    assert summary["passed"] >= 200, summary
    assert summary["parsing_errors"] == 0, summary
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']}:{c['file_line_range']})"
              for c in report["results"]["failed_checks"]]
    assert not failed, "checkov failures (fix, or skip with the reason next to the resource):\n" + "\n".join(failed)


def test_every_checkov_skip_carries_its_reason_next_to_the_resource():
    skips = []
    for path in TF.rglob("*.tf"):
        skips += [(path.relative_to(TF), m) for m in re.findall(r"#\s*checkov:skip=([^\n]*)", path.read_text())]
    assert skips, "no checkov skips found: this test would check nothing"
    for path, skip in skips:
        check, _, reason = skip.partition(":")
        assert re.fullmatch(r"CKV2?_AWS_\d+", check), f"{path}: malformed skip {skip!r}"
        assert len(reason.split()) >= 5, f"{path}: skip {check} needs its reason (at least a sentence), got {reason!r}"


@pytest.mark.parametrize("environment", ["staging", "prod"])
def test_the_database_network_policy_allows_exactly_the_private_subnets_terraform_creates(environment):
    """The NetworkPolicy app -> database (cluster_bootstrap) and the VPC (Terraform) name the same CIDRs."""
    values = tfvars(environment)
    subnets = list(ipaddress.ip_network(values["vpc_cidr"].strip('"')).subnets(new_prefix=20))
    # modules/network: private subnet of zone i = cidrsubnet(vpc_cidr, 4, i + 8)
    private = [str(subnets[i + 8]) for i in range(int(values["az_count"]))]
    inventory = yaml.safe_load((REPO / "inventories" / environment / "group_vars/all/main.yml").read_text())
    assert inventory["cluster_bootstrap_database_cidrs"] == private


@pytest.mark.parametrize("environment", ["staging", "prod"])
def test_the_app_admits_exactly_the_public_subnets_the_load_balancer_forwards_from(environment):
    """The ALB forwards from its nodes in the public subnets; the policy admitted an ingress-nginx namespace that
    does not exist (and so, once the VPC CNI enforces policies, no ALB at all)."""
    values = tfvars(environment)
    subnets = list(ipaddress.ip_network(values["vpc_cidr"].strip('"')).subnets(new_prefix=20))
    # modules/network: public subnet of zone i = cidrsubnet(vpc_cidr, 4, i)
    public = [str(subnets[i]) for i in range(int(values["az_count"]))]
    inventory = yaml.safe_load((REPO / "inventories" / environment / "group_vars/all/main.yml").read_text())
    assert inventory["cluster_bootstrap_load_balancer_cidrs"] == public
