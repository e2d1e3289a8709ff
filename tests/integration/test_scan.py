"""`make scan`: the security gate runs every scanner for real, says RAN or NOT RUN for each, and fails on a
finding or on a scanner that could not run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from helpers import run

pytestmark = pytest.mark.platform
SCANNERS = {"checkov-terraform", "checkov-kubernetes", "checkov-dockerfile", "checkov-github-actions",
            "checkov-ansible", "bandit", "semgrep", "hadolint", "shellcheck", "detect-secrets", "wapiti"}


def scan(tmp_path, *args: str, **env: str):
    result = run([sys.executable, "security/scan.py", "--out", str(tmp_path / "reports"), *args], timeout=900, **env)
    summary = json.loads((tmp_path / "reports" / "summary.json").read_text())
    return result, {r["scanner"]: r for r in summary["results"]}, summary


def test_the_gate_runs_every_scanner_and_passes(tmp_path):
    result, by_name, summary = scan(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert set(by_name) == SCANNERS
    for name, r in by_name.items():
        assert r["status"] == "RAN", f"{name}: {r['status']} ({r['note']})"
        assert r["status"] != "RAN" or r["scanned"], f"{name} ran but says nothing about what it scanned"
        assert f"{r['status']:<8} {name}" in result.stdout
    assert summary["passed"] is True
    assert "| wapiti | RAN | 0 |" in (tmp_path / "reports" / "summary.md").read_text()
    assert json.loads((tmp_path / "reports" / "checkov-terraform" / "results_sarif.sarif").read_text())["runs"]


def test_a_scanner_that_cannot_run_is_not_run_and_fails_the_gate(tmp_path):
    empty = tmp_path / "no-tools"
    empty.mkdir()
    result, by_name, summary = scan(tmp_path, "--only", "bandit,hadolint", SCAN_TOOLS_PATH=str(empty))
    assert result.returncode == 1
    assert by_name["bandit"]["status"] == "NOT RUN" and "bandit is not installed" in by_name["bandit"]["note"]
    assert "NOT RUN  hadolint" in result.stdout
    assert summary["passed"] is False


def test_a_finding_fails_the_gate_and_is_named(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "handler.py").write_text(
        "import subprocess\nimport yaml\n\n\ndef handle(text):\n"
        "    subprocess.run(text, shell=True)\n    return yaml.load(text)\n")
    result, by_name, _ = scan(tmp_path, "--only", "bandit,semgrep", "--python", str(bad))
    assert result.returncode == 1
    assert by_name["bandit"]["findings"] >= 1 and "B602" in by_name["bandit"]["note"]
    assert by_name["semgrep"]["findings"] >= 2 and "subprocess-shell-true" in by_name["semgrep"]["note"]
    assert "security gate: FAILED" in result.stdout


def test_reports_are_written_where_the_summary_says(tmp_path):
    _, by_name, _ = scan(tmp_path, "--only", "hadolint,shellcheck")
    for r in by_name.values():
        assert r["reports"] and all(Path(p).exists() for p in r["reports"]), r["reports"]
