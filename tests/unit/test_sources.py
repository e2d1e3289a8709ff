"""What the clusters install comes from pinned, named sources, with the versions in one place (inventories/sources.yml).

Every Helm chart a role installs is named there with its repository and an exact version, and the task installs
it at that version from that repository (read through the role's defaults, as every inventory loads sources.yml);
Terraform's EKS add-ons are read from the same file; no version is restated anywhere else."""

from __future__ import annotations

import re

import pytest
import yaml
from helpers import REPO

SOURCES = yaml.safe_load((REPO / "inventories" / "sources.yml").read_text())["colors_sources"]
EXACT = re.compile(r"^v?\d+\.\d+\.\d+(-eksbuild\.\d+)?$")


def _helm_tasks() -> list[tuple[str, dict]]:
    found = []
    for path in sorted((REPO / "roles").glob("*/tasks/*.yml")):
        for task in yaml.safe_load(path.read_text()) or []:
            for inner in [task, *task.get("block", [])]:
                if "kubernetes.core.helm" in inner:
                    found.append((path.parts[-3], inner["kubernetes.core.helm"]))
    return found


def _default(role: str, value: str) -> str:
    """A task argument as the role's defaults give it (`{{ <role default> }}`), or as written."""
    defaults = yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text())
    name = re.fullmatch(r"\{\{ (\w+) \}\}", value)
    return defaults[name.group(1)] if name else value


def _resolve(role: str, value: str) -> str:
    """A task argument read through the role's defaults from colors_sources (sources.yml)."""
    value = _default(role, value)
    lookup = re.fullmatch(r"\{\{ colors_sources\.charts\['([\w-]+)'\]\.(\w+) \}\}", value)
    assert lookup, f"roles/{role}: {value!r} is not read from sources.yml (colors_sources.charts)"
    return SOURCES["charts"][lookup.group(1)][lookup.group(2)]


def test_every_chart_is_pinned_to_an_exact_version_of_a_named_https_repository():
    assert SOURCES["charts"]
    for chart, source in SOURCES["charts"].items():
        assert EXACT.match(source["version"]), f"{chart}: {source['version']!r} is not an exact version"
        assert source["repository"].startswith("https://"), f"{chart}: {source['repository']!r}"


def test_every_chart_a_role_installs_is_the_one_sources_yml_pins():
    installed = set()
    for role, helm in _helm_tasks():
        chart = _default(role, helm["chart_ref"])
        assert chart in SOURCES["charts"], f"roles/{role} installs {chart}, which sources.yml does not name"
        assert _resolve(role, helm["chart_version"]) == SOURCES["charts"][chart]["version"], (role, chart)
        assert _resolve(role, helm["chart_repo_url"]) == SOURCES["charts"][chart]["repository"], (role, chart)
        installed.add(chart)
    unused = set(SOURCES["charts"]) - installed
    assert not unused, f"sources.yml names charts no role installs: {sorted(unused)}"


@pytest.mark.parametrize("env", ["local", "staging", "prod"])
def test_every_inventory_loads_sources_yml(env):
    linked = REPO / "inventories" / env / "group_vars" / "all" / "sources.yml"
    assert linked.is_symlink() and linked.resolve() == (REPO / "inventories" / "sources.yml").resolve(), linked


def test_terraform_reads_the_add_on_versions_from_sources_yml_and_every_one_is_exact():
    addons = (REPO / "terraform" / "stack" / "addons.tf").read_text()
    assert 'yamldecode(file("${path.module}/../../inventories/sources.yml")).colors_sources.eks_addons' in addons
    for minor, versions in SOURCES["eks_addons"].items():
        for addon, version in versions.items():
            assert EXACT.match(version), f"sources.yml eks_addons[{minor}].{addon}: {version!r} is not exact"
    for env in ("local", "staging", "prod"):
        tfvars = (REPO / "terraform" / "environments" / env / "terraform.tfvars").read_text()
        minor = re.search(r'kubernetes_version\s*=\s*"([\d.]+)"', tfvars).group(1)
        assert minor in SOURCES["eks_addons"], f"{env} runs Kubernetes {minor}, which sources.yml pins no add-ons for"


def test_no_version_sources_yml_pins_is_restated_elsewhere():
    versions = {s["version"] for s in SOURCES["charts"].values()}
    versions |= {v for minor in SOURCES["eks_addons"].values() for v in minor.values()}
    places = [*REPO.glob("roles/*/defaults/main.yml"), *REPO.glob("roles/*/meta/argument_specs.yml"),
              *REPO.glob("roles/*/tasks/*.yml"), *REPO.glob("inventories/*/group_vars/all/main.yml"),
              *REPO.glob("terraform/**/*.tf"), *REPO.glob("terraform/environments/*/*.tfvars")]
    for path in places:
        text = path.read_text()
        for version in versions:
            assert not re.search(rf"(?<![\w.]){re.escape(version)}(?![\w.])", text), (
                f"{path.relative_to(REPO)} restates {version}: read it from sources.yml")
