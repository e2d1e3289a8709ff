"""The pinned toolchain satisfies what the project declares (collections, versions, pins)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
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


# --- the two Python locks --------------------------------------------------------------------------------------

LOCKS = REPO / "requirements"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^]]*\])?==(\S+)", re.M)


def _pins(text: str) -> dict[str, str]:
    return {name.lower().replace("_", "-"): version for name, version in PIN.findall(text)}


@pytest.mark.parametrize("lock", ["runtime.txt", "dev.txt"])
def test_each_lock_pins_every_package_with_its_hashes(lock):
    entries = re.split(r"\n(?=[A-Za-z0-9])", (LOCKS / lock).read_text().split("\n", 2)[2])
    entries = [e for e in entries if PIN.match(e)]
    assert len(entries) > 20
    unhashed = [e.split()[0] for e in entries if "--hash=sha256:" not in e]
    assert not unhashed, f"{lock} pins without a hash: {unhashed}"


def test_the_dev_lock_holds_the_runtime_lock_at_the_same_versions():
    runtime, dev = _pins((LOCKS / "runtime.txt").read_text()), _pins((LOCKS / "dev.txt").read_text())
    assert {k: dev.get(k) for k in runtime} == runtime
    # The operations toolchain carries none of the development set.
    assert not {"molecule", "moto", "pytest", "ansible-lint", "playwright", "ruff", "uv"} & set(runtime)


def test_the_apps_pins_live_only_in_its_pyproject_and_the_dev_lock_follows_them():
    app = tomllib.loads((REPO / "app" / "pyproject.toml").read_text())["project"]["dependencies"]
    dev = _pins((LOCKS / "dev.txt").read_text())
    for requirement in app:
        name, version = re.fullmatch(r"([a-z0-9-]+)(?:\[[^]]*\])?==(\S+)", requirement).groups()
        assert dev[name] == version, f"dev.txt pins {name} {dev.get(name)}, app/pyproject.toml {version}"
        # runtime.in may ask for one unpinned (the ops toolchain's psycopg): its lock then holds the dev lock's
        # version (test_the_dev_lock_holds_the_runtime_lock_at_the_same_versions).
        for source in ("runtime.in", "dev.in"):
            assert not re.search(rf"^{name}\b\S*[=<>~]", (LOCKS / source).read_text(), re.M), (
                f"{name} is pinned in requirements/{source} as well as in app/pyproject.toml")


@pytest.mark.parametrize(("lock", "sources"), [("runtime.txt", ["requirements/runtime.in"]),
                                               ("dev.txt", ["requirements/dev.in", "app/pyproject.toml"])])
def test_each_lock_is_what_its_sources_resolve_to(lock, sources, tmp_path):
    """No pin that nothing needs, none missing: the lock is what `make lock` would write today."""
    uv = Path(sys.executable).parent / "uv"
    assert uv.exists(), "uv is not installed in the development environment: this check did not run"
    fresh = tmp_path / lock
    # Resolve within the committed pins (as `make lock` does on the same day): a newer release on the index is
    # not drift.
    result = subprocess.run([str(uv), "pip", "compile", "-q", "--generate-hashes", "--python-version", "3.11",
                             "--native-tls", *sources, "-c", str(LOCKS / lock), "-o", str(fresh)], cwd=REPO,
                            env=tool_env(), capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert _pins(fresh.read_text()) == _pins((LOCKS / lock).read_text())


# --- the boundary between the two toolchains ---------------------------------------------------------------------

def make_plan(*args: str) -> str:
    """Every command `make` would run for the targets, up to date or not (make -n -B)."""
    result = subprocess.run(["make", "--no-print-directory", "-n", "-B", *args], cwd=REPO, env=tool_env(),
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


DEVELOPMENT = {"apt-get": "Debian packages", "platformctl.py build": "the Go builds",
               "platformctl.py up": "the local platform", "playbooks/platform.yml": "the local platform",
               "requirements/dev.txt": "the development Python set", "tools/install.py": "the scanners"}


@pytest.mark.parametrize("environment", ["staging", "prod"])
@pytest.mark.parametrize("target", ["deploy", "rollback", "rotate-secrets", "kubeconfig", "monitoring", "infra"])
def test_operations_targets_of_staging_and_prod_need_only_the_operations_toolchain(target, environment):
    plan = make_plan(target, f"ENV={environment}")
    assert "pip install -q --require-hashes --no-deps -r requirements/runtime.txt" in plan
    assert re.search(r"/ops-[0-9a-f]{12}/bin/ansible-playbook", plan), plan
    needed = [why for needle, why in DEVELOPMENT.items() if needle in plan]
    assert not needed, f"make {target} ENV={environment} would install {needed}:\n{plan}"


def test_the_local_environment_runs_operations_from_the_development_toolchain():
    plan = make_plan("rollback")
    assert "requirements/dev.txt" in plan and "platformctl.py build" in plan
    assert re.search(r"/venv-[0-9a-f]{12}/bin/ansible-playbook", plan), plan


@pytest.mark.parametrize("target", ["image", "publish"])
def test_building_and_pushing_the_image_needs_no_local_platform(target):
    plan = make_plan(target, "REGISTRY=registry.example:5000")
    assert "platformctl.py engine" in plan and "app/build_image.py" in plan
    assert "platformctl.py up" not in plan and "playbooks/platform.yml" not in plan
    # Of the Debian packages, only mmdebstrap (it builds the base image); a runner has its own Docker engine.
    assert "for p in mmdebstrap; do" in plan and "containerd" not in plan and "docker.io" not in plan


@pytest.mark.parametrize("target", ["lint", "unit"])
def test_lint_and_unit_need_no_root_and_no_platform(target):
    """A runner's user runs them without apt (GitHub's images have Docker and their own packages; installing
    docker.io over them would break the runner)."""
    plan = make_plan(target)
    assert "requirements/dev.txt" in plan
    assert "apt-get" not in plan and "platformctl.py up" not in plan and "playbooks/platform.yml" not in plan
