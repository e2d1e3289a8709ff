"""Every role follows the house layout: prefixed, documented defaults in sync with argument specs."""

from __future__ import annotations

import re

import pytest
import yaml
from helpers import REPO, load_plugin, run

ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if p.is_dir())


def _defaults(role: str) -> dict:
    path = REPO / "roles" / role / "defaults" / "main.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def _spec(role: str) -> dict:
    return yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]


def test_there_are_roles():
    assert {"preflight", "local_platform", "app_release"} <= set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_role_has_readme_specs_and_molecule_scenario(role):
    base = REPO / "roles" / role
    for rel in ("README.md", "meta/main.yml", "meta/argument_specs.yml", "molecule/default/molecule.yml",
                "molecule/default/converge.yml", "molecule/default/verify.yml"):
        assert (base / rel).is_file(), f"roles/{role}/{rel} is missing"


@pytest.mark.parametrize("role", ROLES)
def test_defaults_are_prefixed_and_commented(role):
    path = REPO / "roles" / role / "defaults" / "main.yml"
    if not path.exists():
        return
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^([a-z_][a-z0-9_]*):", line)
        if not m:
            continue
        assert m.group(1).startswith(f"{role}_"), f"{role} default {m.group(1)} lacks the '{role}_' prefix"
        assert i > 0 and lines[i - 1].startswith("#"), f"{role} default {m.group(1)} has no comment above it"


@pytest.mark.parametrize("role", ROLES)
def test_argument_spec_declares_every_default_with_the_same_value(role):
    # A default may belong to another entry point than main (e.g. infrastructure's kubeconfig).
    options = {name: option for entry in _spec(role).values() for name, option in entry.get("options", {}).items()}
    for name, value in _defaults(role).items():
        assert name in options, f"roles/{role}: default {name} is not declared in meta/argument_specs.yml"
        if isinstance(value, str) and "{{" in value:
            continue  # templated defaults are described in prose in the spec
        assert options[name].get("default") == value, (
            f"roles/{role}: {name} defaults to {value!r} but the argument spec says {options[name].get('default')!r}")


@pytest.mark.parametrize("role", ROLES)
def test_every_option_is_typed_and_described(role):
    for entry, spec in _spec(role).items():
        for name, option in spec.get("options", {}).items():
            assert option.get("type"), f"roles/{role} {entry}.{name} has no type"
            assert option.get("description"), f"roles/{role} {entry}.{name} has no description"
            if not name.startswith(f"{role}_"):
                assert name.startswith("colors_"), f"roles/{role} {entry}.{name}: use the role or colors_ prefix"


@pytest.mark.parametrize("role", ROLES)
def test_readme_variable_table_is_the_one_generated_from_the_argument_spec(role):
    """One source for role docs: the table is tools/role_docs.py's rendering of meta/argument_specs.yml."""
    role_docs = load_plugin("tools/role_docs.py", "role_docs")
    readme = (REPO / "roles" / role / "README.md").read_text()
    assert role_docs.render(readme, _spec(role), _defaults(role), role) == readme, (
        f"roles/{role}/README.md: its variable table differs from meta/argument_specs.yml (run `make role-docs`)")
    for name in _spec(role)["main"]["options"]:
        assert f"| `{name}` |" in readme, f"roles/{role}/README.md does not document {name}"


def test_a_hand_edited_variable_table_is_drift(tmp_path):
    role_docs = load_plugin("tools/role_docs.py", "role_docs")
    readme = (REPO / "roles" / "app_release" / "README.md").read_text()
    edited = readme.replace("| `app_release_replicas` | int | `2` |", "| `app_release_replicas` | int | `3` |")
    assert edited != readme
    assert role_docs.render(edited, _spec("app_release"), _defaults("app_release"), "app_release") == readme
    check = run(["python", "tools/role_docs.py", "--check"])
    assert check.returncode == 0, check.stderr


def test_bootstrap_and_release_agree_on_the_application():
    """cluster_bootstrap prepares what app_release deploys into: the same names, labels and port."""
    boot, release = _defaults("cluster_bootstrap"), _defaults("app_release")
    assert boot["cluster_bootstrap_app_namespace"] == release["app_release_namespace"]
    assert boot["cluster_bootstrap_app_selector"] == {"app.kubernetes.io/name": release["app_release_name"]}
    assert boot["cluster_bootstrap_app_port"] == release["app_release_container_port"]
    assert boot["cluster_bootstrap_priority_class"] == release["app_release_priority_class"]
