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
