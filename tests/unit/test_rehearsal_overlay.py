"""The staging rehearsal changes where staging's endpoints are, nothing else: its overlay
(localplatform/rehearsal/staging.yml) may set only the endpoint keys below, only keys staging itself sets, and the
registry's host but not the repository."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml
from helpers import REPO, inventory_variables

OVERLAY = REPO / "localplatform" / "rehearsal" / "staging.yml"

# The keys the overlay may set, and which endpoint each one is.
ENDPOINT_KEYS = {
    "colors_kubeconfig": "the kubeconfig that reaches the cluster",
    "colors_kube_context": "the deployer's context in it",
    "colors_kube_admin_context": "the administrator's context in it",
    "colors_aws_endpoint_url": "the AWS API",
    "app_release_image_repository": "the registry host (the repository name stays)",
    "app_release_public_url": "the public URL (the ALB's hostname in staging)",
    "monitoring_probe_urls": "the public URL the blackbox exporter probes",
    "app_release_marker_url": "the Pushgateway",
    "cluster_bootstrap_database_cidrs": "where the database is (network policy egress)",
    "app_release_database_ca_url": "where the database's CA bundle is served",
}


def overlay_problems(overlay: Path, staging: Path) -> list[str]:
    keys = yaml.safe_load(overlay.read_text()) or {}
    staging_vars = inventory_variables(staging)
    problems = [f"{key} is not an endpoint: the rehearsal may change only {', '.join(sorted(ENDPOINT_KEYS))}"
                for key in sorted(set(keys) - set(ENDPOINT_KEYS))]
    problems += [f"{key} is not set by staging: the overlay would add behaviour, not move an endpoint"
                 for key in sorted(set(keys) & set(ENDPOINT_KEYS) - set(staging_vars))]
    if "app_release_image_repository" in keys and "app_release_image_repository" in staging_vars:
        # <registry host>/<repository>, read with each Jinja expression (a port, an account id) as one word.
        ours, repository = (re.sub(r"\{\{.*?\}\}", "J", str(value), flags=re.S).split("/", 1)[-1]
                            for value in (keys["app_release_image_repository"],
                                          staging_vars["app_release_image_repository"]))
        if ours != repository:
            problems.append(f"app_release_image_repository must name staging's repository {repository!r} after "
                            "the registry host: only the host may change")
    return problems


def test_the_rehearsal_overlay_moves_endpoints_only():
    assert overlay_problems(OVERLAY, REPO / "inventories" / "staging") == []


def _copy(tmp_path: Path, overlay_text: str) -> tuple[Path, Path]:
    """A copy of the staging inventory, and an overlay beside it with the given text."""
    shutil.copytree(REPO / "inventories" / "staging", tmp_path / "staging")
    overlay = tmp_path / "staging.yml"
    overlay.write_text(overlay_text)
    return overlay, tmp_path / "staging"


def test_a_behaviour_key_in_the_overlay_is_refused(tmp_path):
    problems = overlay_problems(*_copy(tmp_path, OVERLAY.read_text() + "app_release_strategy: rolling\n"))
    assert len(problems) == 1 and problems[0].startswith("app_release_strategy is not an endpoint")


def test_an_endpoint_staging_does_not_set_is_refused(tmp_path):
    overlay, staging = _copy(tmp_path, OVERLAY.read_text())
    path = staging / "group_vars" / "all" / "main.yml"
    path.write_text(path.read_text().replace("app_release_image_repository:", "# app_release_image_repository:"))
    assert overlay_problems(overlay, staging) == ["app_release_image_repository is not set by staging: the overlay "
                                                  "would add behaviour, not move an endpoint"]


def test_another_repository_name_is_refused(tmp_path):
    problems = overlay_problems(*_copy(tmp_path, OVERLAY.read_text().replace("}}/colors", "}}/colors-other")))
    assert problems == ["app_release_image_repository must name staging's repository 'colors' after the registry "
                        "host: only the host may change"]


AWS_GAPS = REPO / "localplatform" / "rehearsal" / "aws-gaps.yml"


def test_the_rehearsals_aws_gaps_are_terraform_variables_the_readme_names_as_not_running_here():
    """What the rehearsal leaves out of staging's apply: only Terraform variables of the stack, each one a setting the
    README's table of what cannot run here names (with what stands in for it)."""
    gaps = yaml.safe_load(AWS_GAPS.read_text())
    assert set(gaps) == {"infrastructure_variables"}
    declared = set(re.findall(r'^variable "(\w+)"', (REPO / "terraform" / "stack" / "variables.tf").read_text(),
                              flags=re.M))
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## What cannot run here"):]
    for name, value in gaps["infrastructure_variables"].items():
        assert name in declared, f"{name} is not a variable of terraform/stack"
        assert value == "false", f"{name}: a gap turns a feature off, it never changes a behaviour"
        assert f"`{name} = false`" in table, f"README's table of what cannot run here does not name {name}"
