"""The game day's verdicts (tools/game_day.py): objectives read from decision 0003, a measurement over one fails."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import pytest
from helpers import REPO

spec = importlib.util.spec_from_file_location("game_day", REPO / "tools" / "game_day.py")
game_day = importlib.util.module_from_spec(spec)
sys.modules["game_day"] = game_day  # its dataclass looks its module up
spec.loader.exec_module(game_day)
M = game_day.Measurement


def test_the_objectives_are_the_decisions():
    assert game_day.objectives() == {
        "application": (0.0, 300.0),  # no data in the pods; 5 minutes, detection included
        "database": (300.0, 3600.0),  # 5 minutes of data; 1 hour
        "infrastructure": (None, 14400.0),  # the database's RPO; 4 hours
        "state": (0.0, 1800.0),  # nothing after the last change; 30 minutes
    }


@pytest.mark.parametrize(("text", "seconds"), [
    ("none (no data lives in the pods)", 0.0), ("5 minutes", 300.0), ("1 hour", 3600.0), ("4 hours", 14400.0),
    ("30 minutes", 1800.0), ("the last change (every version of the state object is kept)", 0.0),
    ("the database's (above)", None), ("90 seconds", 90.0)])
def test_durations_as_the_decision_writes_them(text, seconds):
    assert game_day.duration(text) == seconds


def test_a_changed_objective_changes_the_verdict():
    text = game_day.DECISION.read_text().replace("| 5 minutes, detection included |", "| 10 seconds |")
    goals = game_day.objectives(text)
    assert goals["application"] == (0.0, 10.0)
    [(_, _, _, met)] = game_day.verdicts([M("application", "rollback.yml", 42.0, 0.0)], goals)
    assert not met


def test_a_decision_without_a_drills_row_is_refused():
    text = "\n".join(line for line in game_day.DECISION.read_text().splitlines() if "Terraform's state" not in line)
    with pytest.raises(SystemExit, match=re.escape("no single row 'Terraform's state...' for the state drill")):
        game_day.objectives(text)


def test_a_measurement_over_its_rto_or_rpo_is_exceeded_and_shown_so():
    goals = game_day.objectives()
    rows = game_day.verdicts([
        M("application", "rollback.yml", 41.8, 0.0),
        M("database", "point-in-time restore", 4000.0, 1.0),  # over the hour
        M("database", "archive alone", 2.0, 301.0),  # over 5 minutes of data
        M("infrastructure", "created on moto", 120.0, None),  # no RPO of its own
        M("state", "previous version", 30.0, 1.0),  # one change lost: over "the last change"
    ], goals)
    assert [met for *_, met in rows] == [True, False, False, True, False]
    printed = game_day.table(rows)
    assert printed.count("EXCEEDED") == 3 and "| 66.7 min | 60.0 min |" in printed
    assert "| 1 changes | 0 changes |" in printed


def test_an_unknown_drill_is_refused_naming_the_allowed_ones():
    result = subprocess.run([sys.executable, str(REPO / "tools" / "game_day.py"), "--drills", "datacenter"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "unknown drill(s) datacenter; allowed: application, database, infrastructure, state" in result.stderr
