"""GitHub files validate against their published schemas (bundled in check-jsonschema) and actions are pinned."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from helpers import REPO, STATE, load_plugin, run

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


def test_each_pip_folder_dependabot_watches_holds_the_pins():
    updates = yaml.safe_load((REPO / ".github" / "dependabot.yml").read_text())["updates"]
    folders = [u["directory"] for u in updates if u["package-ecosystem"] == "pip"]
    for folder in folders:
        path = REPO / folder.lstrip("/")
        assert list(path.glob("*.txt")) + list(path.glob("pyproject.toml")), f"{folder} holds no pinned file"
    # Every pinned Python set is watched: the two locks, the app, the scanner sets.
    assert {"/requirements", "/app", "/tools"} <= set(folders)


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflows_match_the_github_workflows_schema(workflow):
    result = check_jsonschema("vendor.github-workflows", str(workflow))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_commit_and_permissions_are_declared(workflow):
    text = workflow.read_text()
    for ref in re.findall(r"uses:\s*(\S+)", text):
        if ref.startswith("./.github/workflows/"):  # a reusable workflow of this repository, same commit
            assert (REPO / ref).is_file(), f"{workflow.name}: {ref} does not exist"
            continue
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


# --- every command a workflow runs is an entry point the local test suite exercises ----------------------------

MAKEFILE = (REPO / "Makefile").read_text()
TESTS_TEXT = "\n".join(p.read_text() for p in (REPO / "tests").rglob("*.py")) + (REPO / ".ci" / "run").read_text() \
    + (REPO / "tools" / "run_suite.py").read_text()  # what `make test` runs: tests, and Molecule by `make molecule`


def _targets() -> dict[str, tuple[list[str], str]]:
    """Makefile target -> (prerequisites, recipe)."""
    targets: dict[str, tuple[list[str], str]] = {}
    current = None
    for line in MAKEFILE.splitlines():
        if m := re.match(r"^([a-z][a-z-]*):(?!=)([^#]*)", line):
            current = m.group(1)
            prereqs = [p for p in m.group(2).split() if re.fullmatch(r"[a-z][a-z-]*", p)]
            targets[current] = (prereqs, "")
        elif line.startswith("\t") and current:
            prereqs, recipe = targets[current]
            targets[current] = (prereqs, recipe + line + "\n")
        elif not line.strip().endswith("\\") and not line.startswith("\t"):
            current = None if not line.strip() else current
    return targets


TARGETS = _targets()


def _closure(root: str) -> set[str]:
    todo, seen = [root], set()
    while todo:
        target = todo.pop()
        if target in seen or target not in TARGETS:
            continue
        seen.add(target)
        prereqs, recipe = TARGETS[target]
        todo += prereqs + re.findall(r"\$\(MAKE\)[^\n]*?\b([a-z][a-z-]+)\s*(?:;|$)", recipe, flags=re.M)
    return seen


def how_exercised(target: str) -> str | None:
    if target in _closure("test"):
        return "part of `make test`"
    if re.search(rf'"make",[^\n]*"{re.escape(target)}"', TESTS_TEXT):
        return "a test runs `make " + target + "`"
    recipe = TARGETS[target][1]
    for playbook in re.findall(r"(?:ansible-playbook|\$\(OPS_PLAYBOOK\)) (\S+\.yml)", recipe):
        if f'"{playbook}"' in TESTS_TEXT or f'"{Path(playbook).name}"' in TESTS_TEXT:
            return f"tests run {playbook}"
    for script in re.findall(r"python (\S+\.py)", recipe):
        if f'"{script}"' in TESTS_TEXT:
            return f"tests run {script}"
    for path in re.findall(r"pytest (tests/\S+)", recipe):
        if "tools/run_suite.py" in TARGETS["test"][1] and _suite_covers(path.rstrip("/")):
            return f"`make test` runs {path} (tools/run_suite.py, with the rest of tests/)"
    return None


def _suite_covers(path: str) -> bool:
    """Whether the lanes of tools/run_suite.py (what `make test` runs) hold every test module under path."""
    lanes = load_plugin("tools/run_suite.py", "run_suite").lanes()
    run = {p for paths in lanes.values() for p in paths}
    modules = {str(m.relative_to(REPO)) for m in (REPO / path).rglob("test_*.py")}
    return bool(modules) and all(m in run or any(m.startswith(f"{p}/") for p in run) for m in modules)


def _run_steps(workflow: Path):
    data = yaml.safe_load(workflow.read_text())
    for job in data["jobs"].values():
        for step in job.get("steps") or []:
            if "run" in step:
                yield step["run"].strip()


RUN_STEPS = sorted({(w.name, cmd) for w in WORKFLOWS for cmd in _run_steps(w)})


def test_workflows_run_steps_exist():
    assert len(RUN_STEPS) >= 10


@pytest.mark.parametrize(("workflow", "command"), RUN_STEPS, ids=[f"{w}:{c}" for w, c in RUN_STEPS])
def test_every_workflow_command_is_a_make_target_the_local_suite_exercises(workflow, command):
    match = re.fullmatch(r"make ([a-z][a-z-]*)", command)
    assert match, f"{workflow}: `{command}` is not a single make target (inputs go through env:, not the command)"
    target = match.group(1)
    assert target in TARGETS, f"{workflow}: make {target} does not exist"
    assert how_exercised(target), f"{workflow}: make {target} is not exercised by the local test suite"


def test_the_exercised_check_can_fail():
    assert how_exercised("help") is None


def _workflow(name: str) -> dict:
    return yaml.safe_load((REPO / ".github" / "workflows" / name).read_text())


def test_ci_runs_molecule_for_every_role():
    roles = sorted(p.parent.parent.name for p in (REPO / "roles").glob("*/molecule/default"))
    assert sorted(_workflow("ci.yml")["jobs"]["molecule"]["strategy"]["matrix"]["role"]) == roles


def test_production_deploys_wait_for_staging_and_the_security_checks_behind_reviewers():
    jobs = _workflow("deploy.yml")["jobs"]
    assert jobs["security"]["uses"] == "./.github/workflows/security.yml"
    assert set(jobs["prod"]["needs"]) == {"staging", "security"}
    assert jobs["prod"]["environment"] == "prod" and jobs["staging"]["environment"] == "staging"
    for env in ("staging", "prod"):
        assert jobs[env]["concurrency"] == {"group": f"colors-{env}", "cancel-in-progress": False}
        assert {"ENV": env}.items() <= jobs[env]["steps"][-1]["env"].items()
    rollback = _workflow("rollback.yml")["jobs"]["rollback"]
    assert rollback["concurrency"]["group"] == "colors-${{ inputs.environment }}"


def test_the_security_workflow_runs_on_a_schedule_and_can_be_called_by_deploy():
    triggers = _workflow("security.yml")[True]  # YAML 1.1 reads the key `on` as True
    assert {"schedule", "workflow_dispatch", "workflow_call"} <= set(triggers)
    assert "SNYK_TOKEN" in triggers["workflow_call"]["secrets"]


def test_id_tokens_are_granted_only_to_jobs_that_assume_an_aws_role():
    for workflow in WORKFLOWS:
        data = yaml.safe_load(workflow.read_text())
        assert "id-token" not in (data.get("permissions") or {}), f"{workflow.name}: id-token at workflow level"
        for name, job in data["jobs"].items():
            if (job.get("permissions") or {}).get("id-token") == "write":
                uses = [s.get("uses", "") for s in job.get("steps", [])]
                assert any(u.startswith("aws-actions/configure-aws-credentials@") for u in uses), name
