"""Sanity checks in the spirit of `ansible-test sanity` for every plugin the project ships."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml
from helpers import REPO

PLUGINS = sorted(p for d in ("modules", "filter") for p in (REPO / "plugins" / d).glob("*.py"))


def _docs(path: Path) -> dict[str, str]:
    tree = ast.parse(path.read_text())
    return {t.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name) and isinstance(node.value, ast.Constant)}


def test_there_are_plugins():
    assert PLUGINS


@pytest.mark.parametrize("path", PLUGINS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_documentation_examples_and_return_are_valid_yaml(path):
    docs = _docs(path)
    for block in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
        assert block in docs, f"{path.name} has no {block}"
        assert yaml.safe_load(docs[block]), f"{path.name} {block} is empty"
    doc = yaml.safe_load(docs["DOCUMENTATION"])
    assert doc.get("short_description") and doc.get("description")
    for name, option in (doc.get("options") or {}).items():
        assert option.get("description"), f"{path.name} option {name} is undocumented"


MODULES = sorted((REPO / "plugins" / "modules").glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_argument_spec_matches_its_documentation(path):
    """validate-modules in spirit: every option documented with the argument spec's type, default, choices."""
    from helpers import load_plugin

    module = load_plugin(f"plugins/modules/{path.name}", f"doccheck_{path.stem}")
    spec = module.argument_spec()
    documented = yaml.safe_load(module.DOCUMENTATION)["options"]
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
    fragment = "kubernetes.core.k8s_auth_options" if hasattr(module, "AUTH_ARG_SPEC") else "amazon.aws.common.modules"
    assert fragment in yaml.safe_load(module.DOCUMENTATION).get("extends_documentation_fragment", [])


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_supports_check_mode(path):
    # run_module (plugins/module_utils/colors_k8s.py) builds the Kubernetes modules with supports_check_mode=True
    text = path.read_text()
    if "run_module(argument_spec()" in text:
        assert "supports_check_mode=True" in (REPO / "plugins" / "module_utils" / "colors_k8s.py").read_text()
    else:
        assert "supports_check_mode=True" in text
