"""GitHub files validate against their published schemas (bundled in check-jsonschema) and actions are pinned."""

from __future__ import annotations

import re

import pytest
from helpers import REPO, STATE, run

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


def check_jsonschema(schema: str, *files: str):
    return run([str(STATE / "bin" / "check-jsonschema"), "--builtin-schema", schema, *files])


def test_dependabot_config_matches_the_dependabot_schema():
    result = check_jsonschema("vendor.dependabot", str(REPO / ".github" / "dependabot.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dependabot_schema_check_rejects_a_wrong_file(tmp_path):
    broken = tmp_path / "dependabot.yml"
    broken.write_text("version: 2\nupdates:\n  - package-ecosystem: pip\n    schedule:\n      interval: hourly\n")
    assert check_jsonschema("vendor.dependabot", str(broken)).returncode != 0


def test_dependabot_covers_every_ecosystem_of_the_project():
    text = (REPO / ".github" / "dependabot.yml").read_text()
    for ecosystem in ("pip", "github-actions", "terraform", "docker"):
        assert f"package-ecosystem: {ecosystem}" in text


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflows_match_the_github_workflows_schema(workflow):
    result = check_jsonschema("vendor.github-workflows", str(workflow))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_commit_and_permissions_are_declared(workflow):
    text = workflow.read_text()
    for ref in re.findall(r"uses:\s*(\S+)", text):
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), f"{workflow.name}: {ref} is not pinned by SHA"
    assert re.search(r"^permissions:", text, flags=re.M), f"{workflow.name} declares no top-level permissions"


def test_actionlint_finds_nothing_in_the_workflows():
    result = run([str(STATE / "bin" / "actionlint"), "-no-color", *map(str, WORKFLOWS)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n"
                      "      - run: echo ${{ github.event.nope.missing }}\n        shell: bashh\n")
    assert run([str(STATE / "bin" / "actionlint"), "-no-color", str(broken)]).returncode != 0
