"""The pinned toolchain satisfies what the project declares (collections, versions, pins)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import PLATFORM, REPO, tool_env
from packaging.specifiers import SpecifierSet
from packaging.version import Version

REQUIREMENTS = yaml.safe_load((REPO / "collections" / "requirements.yml").read_text())["collections"]
FQCN = re.compile(r"\b([a-z0-9_]+)\.([a-z0-9_]+)\.[a-z0-9_]+\b")
YAML_SOURCES = [p for d in ("playbooks", "roles", "molecule") for p in (REPO / d).rglob("*.yml")]


def installed_collections() -> dict[str, str]:
    out = subprocess.run([str(Path(sys.executable).parent / "ansible-galaxy"), "collection", "list",
                          "--format", "json"], capture_output=True, text=True, check=True).stdout
    found: dict[str, str] = {}
    for collections in json.loads(out).values():
        for name, info in collections.items():
            found.setdefault(name, info["version"])
    return found


@pytest.mark.parametrize("entry", REQUIREMENTS, ids=lambda e: e["name"])
def test_installed_collection_satisfies_requirements(entry):
    installed = installed_collections()
    assert entry["name"] in installed, f"{entry['name']} is not installed with the pinned ansible package"
    version = Version(installed[entry["name"]])
    assert version in SpecifierSet(entry["version"]), (
        f"{entry['name']} {version} does not satisfy {entry['version']} in collections/requirements.yml")


def test_every_collection_used_is_declared():
    """... in collections/requirements.yml, or it is the project's own (colors.deploy), whose dependencies are."""
    galaxy = yaml.safe_load((REPO / "collections/ansible_collections/colors/deploy/galaxy.yml").read_text())
    assert set(galaxy["dependencies"]) <= {e["name"] for e in REQUIREMENTS}
    declared = {e["name"] for e in REQUIREMENTS} | {"ansible.builtin", f"{galaxy['namespace']}.{galaxy['name']}"}
    used = set()
    for path in YAML_SOURCES:
        for data in yaml.safe_load_all(path.read_text()):
            for key in _keys(data):
                if m := FQCN.fullmatch(key):
                    used.add(f"{m.group(1)}.{m.group(2)}")
    undeclared = {c for c in used if c not in declared}
    assert not undeclared, f"collections used but missing from collections/requirements.yml: {sorted(undeclared)}"
    assert "kubernetes.core" in used  # the scan found real task keys


def _keys(data):
    if isinstance(data, dict):
        for key, value in data.items():
            yield str(key)
            yield from _keys(value)
    elif isinstance(data, list):
        for item in data:
            yield from _keys(item)


def test_platform_versions_match_the_pinned_go_modules():
    build = REPO / "localplatform" / "build"
    pins = {
        "kubernetes": ("kubernetes", "k8s.io/kubernetes"),
        "etcd": ("etcd", "go.etcd.io/etcd/server/v3"),
        "kwok": ("kwok", "sigs.k8s.io/kwok"),
        "actionlint": ("actionlint", "github.com/rhysd/actionlint"),
    }
    for component, (folder, module) in pins.items():
        gomod = (build / folder / "go.mod").read_text()
        m = re.search(rf"^\s*(?:require\s+)?{re.escape(module)} v(\S+)", gomod, re.M)
        assert m, f"{module} is not required in localplatform/build/{folder}/go.mod"
        assert m.group(1) == PLATFORM["versions"][component], (
            f"platform.yml pins {component} {PLATFORM['versions'][component]} but go.mod builds {m.group(1)}")


def test_kubernetes_staging_modules_are_pinned_to_the_same_release():
    gomod = (REPO / "localplatform" / "build" / "kubernetes" / "go.mod").read_text()
    minor_patch = PLATFORM["versions"]["kubernetes"].split(".", 1)[1]
    replaces = re.findall(r"^\s*(k8s\.io/[\w-]+) => \S+ v(\S+)$", gomod, re.M)
    assert len(replaces) > 20
    wrong = [(mod, v) for mod, v in replaces if v != f"0.{minor_patch}"]
    assert not wrong, f"staging modules not at v0.{minor_patch}: {wrong}"


ENTRY_PLAYBOOKS = sorted([*(p.name for p in REPO.glob("*.yml") if p.name != "execution-environment.yml"),
                          *(f"playbooks/{p.name}" for p in (REPO / "playbooks").glob("*.yml"))])


@pytest.mark.parametrize("where", ["elsewhere", "playbooks"])
def test_every_playbook_parses_from_another_working_directory(tmp_path, where):
    """Given ANSIBLE_CONFIG, the roles, the collection colors.deploy and the vault password resolve against
    ansible.cfg's folder, not the working directory (from a temporary folder, and from playbooks/)."""
    cwd = tmp_path if where == "elsewhere" else REPO / "playbooks"
    result = subprocess.run(["ansible-playbook", "--syntax-check", "-i", str(REPO / "inventories" / "local"),
                             *(str(REPO / p) for p in ENTRY_PLAYBOOKS)], cwd=cwd, env=tool_env(),
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    # The local environment's vault decrypts (its password file named by a path setting of ansible.cfg).
    host = subprocess.run(["ansible-inventory", "-i", str(REPO / "inventories" / "local"), "--host", "localhost"],
                          cwd=cwd, env=tool_env(), capture_output=True, text=True, check=False)
    assert host.returncode == 0, host.stderr[-2000:]
    assert json.loads(host.stdout)["vault_monitoring_receivers"]["page"].startswith("http")
