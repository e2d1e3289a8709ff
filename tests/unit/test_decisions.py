"""docs/decisions: each record has its form, the story's three open questions are answered, and the facts a record
quotes from the code (each environment's release strategy, the database's recovery settings) are the code's."""

from __future__ import annotations

import re

import pytest
import yaml
from helpers import REPO, tfvars

DECISIONS = REPO / "docs" / "decisions"
RECORDS = sorted(DECISIONS.glob("[0-9][0-9][0-9][0-9]-*.md"))
STORY_QUESTIONS = {1: "Which cloud provider", 2: "What's our deployment strategy", 3: "What are our RTO and RPO"}


def _table(text: str, first_header: str) -> dict[str, list[str]]:
    """The markdown table whose first column is headed `first_header`, by its first column."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"\|\s*{re.escape(first_header)}\s*\|", line))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def test_there_are_records_and_the_index_lists_each():
    assert len(RECORDS) >= 6
    index = (DECISIONS / "README.md").read_text()
    for record in RECORDS:
        assert f"]({record.name})" in index, f"docs/decisions/README.md does not list {record.name}"


@pytest.mark.parametrize("record", RECORDS, ids=lambda p: p.stem)
def test_each_record_has_its_status_context_decision_and_consequences(record):
    text = record.read_text()
    assert text.startswith(f"# {record.name[:4]} — "), record.name
    assert re.search(r"^Status: (proposed|accepted|superseded by \d{4})", text, flags=re.M), record.name
    for heading in ("## Context", "## Decision", "## Consequences"):
        assert f"\n{heading}\n" in text, f"{record.name} has no {heading}"


def test_the_storys_open_questions_are_each_answered_by_a_record():
    story = (REPO.parent / "shared" / "story-6.3-production-deployment.md")
    answered = {int(n): r.name for r in RECORDS for n in re.findall(r"open question (\d)", r.read_text())}
    assert set(answered) == set(STORY_QUESTIONS), answered
    if story.exists():  # the story lives beside the repository on the team's machines
        for question in STORY_QUESTIONS.values():
            assert question in story.read_text()
    for number, question in STORY_QUESTIONS.items():
        assert question in (DECISIONS / answered[number]).read_text(), f"{answered[number]} does not quote it"


def test_the_strategy_of_each_environment_is_the_one_its_inventory_deploys_with():
    table = _table((DECISIONS / "0002-release-strategy.md").read_text(), "environment")
    defaults = yaml.safe_load((REPO / "roles" / "app_release" / "defaults" / "main.yml").read_text())
    for environment in ("local", "staging", "prod"):
        inventory = yaml.safe_load((REPO / "inventories" / environment / "group_vars" / "all" / "main.yml").read_text())
        strategy = inventory.get("app_release_strategy", defaults["app_release_strategy"])
        assert table[environment][0] == strategy, f"0002 says {environment} deploys {table[environment][0]}, " \
                                                  f"its inventory {strategy}"


def test_the_recovery_settings_quoted_are_the_terraform_of_each_environment():
    text = (DECISIONS / "0003-recovery-objectives.md").read_text()
    settings = _table(text, "setting")
    assert {"db_multi_az", "db_backup_retention_days", "deletion_protection"} <= set(settings)
    for setting, (staging, prod) in settings.items():
        assert (tfvars("staging")[setting].strip('"'), tfvars("prod")[setting].strip('"')) == (staging, prod), setting
    objectives = _table(text, "what fails")
    assert len(objectives) == 5 and all(row[0] and row[1] for row in objectives.values())
