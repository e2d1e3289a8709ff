"""Staging provably mirrors production: the same hosts and variable keys, and values differ only where an
allow-list says environments may differ (names, sizes, accounts)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml
from helpers import REPO, inventory_variables

# Keys whose values may differ between staging and prod, and why.
ALLOWED_DIFFERENCES = {
    "colors_environment": "the environment's own name",
    "colors_kube_context": "each environment's cluster",
    "colors_kube_admin_context": "each environment's cluster",
    "colors_aws_account_id": "each environment's AWS account",
    "app_release_replicas": "size",
    "cluster_bootstrap_database_cidrs": "each environment's VPC addresses (checked against Terraform)",
    "cluster_bootstrap_load_balancer_cidrs": "each environment's VPC addresses (checked against Terraform)",
    "monitoring_probe_urls": "each environment's public hostname (checked against Terraform's domain_name)",
    "app_release_public_url": "each environment's public hostname (checked against Terraform's domain_name)",
}


def parity_problems(staging: Path, prod: Path) -> list[str]:
    problems = []
    if yaml.safe_load((staging / "hosts.yml").read_text()) != yaml.safe_load((prod / "hosts.yml").read_text()):
        problems.append("hosts.yml differs between staging and prod")
    stage_vars, prod_vars = inventory_variables(staging), inventory_variables(prod)
    for key in sorted(set(stage_vars) ^ set(prod_vars)):
        only = "prod" if key in prod_vars else "staging"
        problems.append(f"{key} is set in {only} only")
    for key in sorted(set(stage_vars) & set(prod_vars)):
        if stage_vars[key] != prod_vars[key] and key not in ALLOWED_DIFFERENCES:
            problems.append(f"{key} differs (staging {stage_vars[key]!r}, prod {prod_vars[key]!r}) and is not in "
                            "the allow-list of keys that may differ")
    return problems


def test_staging_mirrors_prod():
    assert parity_problems(REPO / "inventories" / "staging", REPO / "inventories" / "prod") == []


def test_a_key_added_to_prod_only_breaks_parity(tmp_path):
    for env in ("staging", "prod"):
        shutil.copytree(REPO / "inventories" / env, tmp_path / env)
    with (tmp_path / "prod" / "group_vars" / "all" / "main.yml").open("a") as f:
        f.write("\napp_release_smoke_url: https://colors.example.com/readyz\n")
    assert parity_problems(tmp_path / "staging", tmp_path / "prod") == ["app_release_smoke_url is set in prod only"]


def test_a_value_outside_the_allow_list_breaks_parity(tmp_path):
    for env in ("staging", "prod"):
        shutil.copytree(REPO / "inventories" / env, tmp_path / env)
    path = tmp_path / "prod" / "group_vars" / "all" / "main.yml"
    path.write_text(path.read_text().replace("app_release_strategy: blue_green", "app_release_strategy: rolling"))
    problems = parity_problems(tmp_path / "staging", tmp_path / "prod")
    assert len(problems) == 1 and problems[0].startswith("app_release_strategy differs")


# A condition on staging or prod: staging must run prod's code paths (only the local platform, which starts
# itself, may get its own branch).
BRANCH = re.compile(r"colors_environment\s*(==|!=|in|not in)\s*[\[(]?\s*['\"](staging|prod)['\"]")


def test_no_play_or_task_branches_on_staging_or_prod():
    offenders = [f"{path.relative_to(REPO)}:{number}"
                 for path in sorted([*REPO.glob("*.yml"), *(REPO / "playbooks").rglob("*.yml"),
                                     *(REPO / "roles").rglob("*.yml"), *(REPO / "roles").rglob("*.j2")])
                 for number, line in enumerate(path.read_text().splitlines(), start=1) if BRANCH.search(line)]
    assert offenders == []


def test_the_branch_check_sees_a_prod_only_task():
    assert BRANCH.search("  when: colors_environment == 'prod'")
    assert BRANCH.search("  when: colors_environment in ['staging', 'prod']")
    assert not BRANCH.search("  when: colors_environment == 'local'")


def test_the_probed_urls_are_the_environments_public_hostname():
    for env in ("staging", "prod"):
        domain = re.search(r'^domain_name\s*=\s*"([^"]+)"', (REPO / "terraform" / "environments" / env /
                                                             "terraform.tfvars").read_text(), re.M).group(1)
        variables = inventory_variables(REPO / "inventories" / env)
        assert variables["monitoring_probe_urls"] == [f"https://{domain}/readyz"], env
        assert variables["app_release_public_url"] == f"https://{domain}/", env
