"""The docs hold together: the compliance matrix points at evidence that exists (every test it names is defined, every
file it names exists), and every relative link of the Markdown docs resolves."""

from __future__ import annotations

import re

from helpers import REPO

COMPLIANCE = (REPO / "docs" / "compliance.md").read_text()
DEFINED = {m for p in (REPO / "tests").rglob("test_*.py") for m in re.findall(r"^def (test_\w+)", p.read_text(), re.M)}


def test_every_test_named_as_evidence_exists():
    named = set(re.findall(r"::(test_\w+)", COMPLIANCE))
    assert len(named) > 20
    assert sorted(named - DEFINED) == []


def test_every_file_named_as_evidence_exists():
    paths = set(re.findall(r"`((?:tests|roles|docs|security|terraform)/[\w./-]+\.(?:py|yml|md))", COMPLIANCE))
    assert paths and sorted(p for p in paths if not (REPO / p).exists()) == []


def test_every_relative_link_of_the_docs_resolves():
    docs = [*REPO.glob("*.md"), *REPO.glob("docs/*.md"), *REPO.glob("roles/*/README.md"),
            REPO / "plugins" / "README.md", REPO / "terraform" / "README.md"]
    broken = [f"{p.relative_to(REPO)} -> {target}" for p in docs
              for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", p.read_text())
              if not target.startswith(("http://", "https://", "mailto:")) and not (p.parent / target).exists()]
    assert len(docs) > 10 and broken == []
