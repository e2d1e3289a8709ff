"""Sanity checks in the spirit of `ansible-test sanity` for every plugin of the collection colors.deploy."""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers import REPO, load_plugin, tool_env

MODULES = sorted((REPO / "plugins" / "modules").glob("*.py"))
FILTERS = {name: path for path in sorted((REPO / "plugins" / "filter").glob("*.py"))
           for name in load_plugin(f"plugins/filter/{path.name}").FilterModule().filters()}


def _docs(path: Path) -> dict[str, str]:
    tree = ast.parse(path.read_text())
    return {t.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name) and isinstance(node.value, ast.Constant)}


def _check_doc(where: str, doc: dict) -> None:
    assert doc.get("short_description") and doc.get("description"), where
    for name, option in (doc.get("options") or {}).items():
        assert option.get("description"), f"{where} option {name} is undocumented"


def test_there_are_plugins():
    assert MODULES and FILTERS


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_documentation_examples_and_return_are_valid_yaml(path):
    docs = _docs(path)
    for block in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
        assert block in docs, f"{path.name} has no {block}"
        assert yaml.safe_load(docs[block]), f"{path.name} {block} is empty"
    doc = yaml.safe_load(docs["DOCUMENTATION"])
    _check_doc(path.name, doc)
    # The shared fragment, and check mode declared the way ansible-doc shows it.
    assert {"colors.deploy.common", "ansible.builtin.action_common_attributes"} <= set(
        doc["extends_documentation_fragment"])
    assert doc["attributes"]["check_mode"]["support"] == "full", path.name
    # Examples call the module by FQCN.
    examples = yaml.safe_load(docs["EXAMPLES"])
    assert any(f"colors.deploy.{path.stem}" in task for task in examples), path.name


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_each_filter_has_its_own_documentation(name):
    """One doc per filter (a sidecar <name>.yml, as ansible-core reads it), not one shared by a file's filters."""
    sidecar = REPO / "plugins" / "filter" / f"{name}.yml"
    assert sidecar.is_file(), f"the {name} filter has no {sidecar.name}"
    docs = yaml.safe_load(sidecar.read_text())
    assert docs["DOCUMENTATION"]["name"] == name
    _check_doc(sidecar.name, docs["DOCUMENTATION"])
    assert docs["RETURN"]["_value"]["description"]
    assert f"colors.deploy.{name}" in docs["EXAMPLES"], "examples call the filter by FQCN"
    assert all(yaml.safe_load(docs["EXAMPLES"]))


def test_no_filter_doc_without_its_filter_and_no_filter_without_a_caller():
    assert {p.stem for p in (REPO / "plugins" / "filter").glob("*.yml")} == set(FILTERS)
    callers = "".join(p.read_text() for p in (*REPO.glob("roles/*/tasks/*.yml"), *REPO.glob("roles/*/templates/*")))
    assert not [n for n in FILTERS if f"colors.deploy.{n}" not in callers], "filters nobody calls"


def test_ansible_doc_resolves_every_plugin_of_the_collection_from_another_directory(tmp_path):
    """What a user runs: ansible-doc finds the collection through ansible.cfg, from another working directory."""
    env = tool_env()  # ANSIBLE_CONFIG: the project's ansible.cfg
    names = [f"colors.deploy.{p.stem}" for p in MODULES]
    modules = subprocess.run(["ansible-doc", "--json", *names], cwd=tmp_path, env=env, capture_output=True,
                             text=True, check=False)
    assert modules.returncode == 0, modules.stderr[-2000:]
    docs = json.loads(modules.stdout)
    assert set(docs) == set(names)
    for name, doc in docs.items():
        assert doc["doc"]["attributes"]["check_mode"]["support"] == "full", name
        assert doc["doc"]["author"] == ["Colors platform team"], name  # from the colors.deploy.common fragment
    filters = subprocess.run(["ansible-doc", "--json", "-t", "filter", *(f"colors.deploy.{n}" for n in FILTERS)],
                             cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert filters.returncode == 0, filters.stderr[-2000:]
    docs = json.loads(filters.stdout)
    assert {name: doc["doc"]["name"] for name, doc in docs.items()} == {f"colors.deploy.{n}": n for n in FILTERS}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_argument_spec_matches_its_documentation(path):
    """validate-modules in spirit: every option documented with the argument spec's type, default, choices."""
    from helpers import load_plugin

    module = load_plugin(f"plugins/modules/{path.name}")
    spec = module.argument_spec()
    documented = dict(yaml.safe_load(module.DOCUMENTATION)["options"])
    # Options shared through a fragment of this collection (colors.deploy.common.<name>: the LOCK attribute).
    shared = load_plugin("plugins/doc_fragments/common.py").ModuleDocFragment
    for fragment in yaml.safe_load(module.DOCUMENTATION).get("extends_documentation_fragment", []):
        if fragment.startswith("colors.deploy.common."):
            documented.update(yaml.safe_load(getattr(shared, fragment.rsplit(".", 1)[1].upper()))["options"])
    own = {k: v for k, v in spec.items() if k not in getattr(module, "AUTH_ARG_SPEC", {})}
    assert set(own) == set(documented), f"{path.name}: documented {sorted(documented)} vs spec {sorted(own)}"
    for name, option in own.items():
        doc = documented[name]
        assert doc["type"] == option["type"], f"{path.name} {name}: type"
        assert doc.get("default") == option.get("default"), f"{path.name} {name}: default"
        assert doc.get("choices") == option.get("choices"), f"{path.name} {name}: choices"
        assert bool(doc.get("required")) == bool(option.get("required")), f"{path.name} {name}: required"
        for sub, sub_spec in (option.get("options") or {}).items():
            assert sub in doc.get("suboptions", {}), f"{path.name} {name}.{sub} undocumented"
            assert doc["suboptions"][sub].get("default") == sub_spec.get("default")
    # The connection options come from the collection the module builds on, documented by its fragment.
    fragments = yaml.safe_load(module.DOCUMENTATION).get("extends_documentation_fragment", [])
    if hasattr(module, "AUTH_ARG_SPEC"):
        assert "kubernetes.core.k8s_auth_options" in fragments
    elif "AnsibleAWSModule" in path.read_text():
        assert "amazon.aws.common.modules" in fragments


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_supports_check_mode(path):
    # run_module (plugins/module_utils/colors_k8s.py) builds the Kubernetes modules with supports_check_mode=True
    text = path.read_text()
    if "run_module(argument_spec()" in text:
        assert "supports_check_mode=True" in (REPO / "plugins" / "module_utils" / "colors_k8s.py").read_text()
    else:
        assert "supports_check_mode=True" in text
