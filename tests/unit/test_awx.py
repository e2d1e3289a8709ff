"""AWX as code (awx/controller.yml, playbooks/awx.yml) refers only to what exists, and the execution environment
(execution-environment.yml) carries the project's own pinned dependencies.

No AWX runs on this machine: these tests check every reference the controller would resolve, against the
repository; ansible-lint (`make lint`) checks the awx.awx module arguments of playbooks/awx.yml."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers import PLATFORM, REPO, STATE, ansible_playbook, run

CONFIG = yaml.safe_load((REPO / "awx" / "controller.yml").read_text())
INCLUDE = ("ansible.builtin.include_role", "ansible.builtin.import_role", "include_role", "import_role")


def _role_entry_points(playbook: Path, seen: set[Path] | None = None) -> set[tuple[str, str]]:
    """(role, entry point) pairs a playbook runs, following import_playbook."""
    seen = seen or set()
    if playbook in seen:
        return set()
    seen.add(playbook)
    found: set[tuple[str, str]] = set()
    for play in yaml.safe_load(playbook.read_text()) or []:
        if "ansible.builtin.import_playbook" in play:
            found |= _role_entry_points((playbook.parent / play["ansible.builtin.import_playbook"]).resolve(), seen)
            continue
        for role in play.get("roles") or []:
            found.add((role if isinstance(role, str) else role.get("role") or role["name"], "main"))
        for section in ("pre_tasks", "tasks", "post_tasks", "handlers"):
            for task in _walk(play.get(section) or []):
                for key in INCLUDE:
                    if key in task:
                        found.add((task[key]["name"], task[key].get("tasks_from", "main")))
    return found


def _walk(tasks: list) -> list[dict]:
    out = []
    for task in tasks:
        out.append(task)
        for section in ("block", "rescue", "always"):
            out += _walk(task.get(section) or [])
    return out


def _inline_specs(playbook: Path) -> set[str]:
    names: set[str] = set()
    for play in yaml.safe_load(playbook.read_text()) or []:
        for task in _walk(play.get("tasks") or []):
            spec = (task.get("ansible.builtin.validate_argument_spec") or {}).get("argument_spec") or {}
            names |= set(spec)
    return names


def declared_variables(playbook: Path) -> set[str]:
    """Variables the playbook declares: the argument specs of the role entry points it runs, and inline specs."""
    names = _inline_specs(playbook)
    for role, entry in _role_entry_points(playbook.resolve()):
        specs = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
        # A role's "validate" entry point checks the variables of its main one (colors.deploy.validate_role_vars).
        entry = "main" if entry == "validate" else entry
        assert entry in specs, f"{playbook.name} runs {role} entry point {entry}, which has no argument spec"
        names |= set(specs[entry].get("options") or {})
    return names


def awx_problems(config: dict) -> list[str]:
    problems = []
    templates = {t["key"]: t for t in config["colors_awx_job_templates"]}
    for env in config["colors_awx_environments"]:
        if not (REPO / "inventories" / env / "hosts.yml").is_file():
            problems.append(f"inventory source inventories/{env}/hosts.yml does not exist")
    for template in templates.values():
        playbook = REPO / template["playbook"]
        if not playbook.is_file():
            problems.append(f"{template['name']}: playbook {template['playbook']} does not exist")
            continue
        declared = declared_variables(playbook)
        for question in template["survey"]:
            if question["variable"] not in declared:
                problems.append(f"{template['name']}: survey variable {question['variable']} is not declared in "
                                f"the argument specs of {template['playbook']}")
        if template["job_type"] not in ("run", "check"):
            problems.append(f"{template['name']}: job_type {template['job_type']}")
    workflow = config["colors_awx_workflow"]
    nodes = {n["identifier"]: n for n in workflow["nodes"]}
    for node in nodes.values():
        if node["template"] not in templates:
            problems.append(f"workflow node {node['identifier']}: no job template {node['template']}")
            continue
        for target in node.get("success", []) + node.get("failure", []):
            if target not in nodes:
                problems.append(f"workflow node {node['identifier']} leads to unknown node {target}")
        playbook = REPO / templates[node["template"]]["playbook"]
        for variable in node.get("extra_data", {}):
            if not playbook.is_file() or variable not in declared_variables(playbook):
                problems.append(f"workflow node {node['identifier']}: {variable} is not declared by its playbook")
    first = templates.get(workflow["nodes"][0]["template"])
    first_declared = declared_variables(REPO / first["playbook"]) if (REPO / first["playbook"]).is_file() else set()
    for question in workflow["survey"]:
        if question["variable"] not in first_declared:
            problems.append(f"workflow survey variable {question['variable']} is not declared by {first['playbook']}")
    for schedule in config["colors_awx_schedules"]:
        if schedule["template"] not in templates or schedule["environment"] not in config["colors_awx_environments"]:
            problems.append(f"schedule {schedule['name']} refers to {schedule['template']} in "
                            f"{schedule['environment']}")
    return problems


def test_every_awx_reference_exists_and_every_survey_variable_is_declared():
    assert awx_problems(CONFIG) == []


def test_the_reference_check_finds_a_missing_playbook_and_an_undeclared_survey_variable():
    broken = copy.deepcopy(CONFIG)
    broken["colors_awx_job_templates"][0]["playbook"] = "playbooks/nope.yml"
    broken["colors_awx_job_templates"][1]["survey"].append({"variable": "app_release_colour", "type": "text"})
    broken["colors_awx_workflow"]["nodes"][0]["failure"] = ["restore"]
    assert awx_problems(broken) == [
        "Colors deploy: playbook playbooks/nope.yml does not exist",
        "Colors verify: survey variable app_release_colour is not declared in the argument specs of "
        "playbooks/verify.yml",
        "workflow node deploy leads to unknown node restore",
        "workflow survey variable app_release_version is not declared by playbooks/nope.yml",
        "workflow survey variable colors_confirm_environment is not declared by playbooks/nope.yml",
    ]


def test_the_workflow_rolls_back_when_deploy_or_verify_fails_and_every_path_ends_in_a_notification():
    nodes = {n["identifier"]: n for n in CONFIG["colors_awx_workflow"]["nodes"]}
    assert nodes["deploy"]["template"] == "deploy" and nodes["deploy"]["success"] == ["verify"]
    assert nodes["deploy"]["failure"] == ["rollback"] and nodes["verify"]["failure"] == ["rollback"]

    def ends(identifier: str) -> set[str]:
        node = nodes[identifier]
        nexts = node.get("success", []) + node.get("failure", [])
        return {node["template"]} if not nexts else set().union(*(ends(n) for n in nexts))

    assert ends("deploy") == {"notify"}
    outcomes = {n["extra_data"]["colors_notify_outcome"] for n in nodes.values() if n["template"] == "notify"}
    spec = yaml.safe_load((REPO / "playbooks" / "notify.yml").read_text())[1]["tasks"][0]
    assert outcomes <= set(spec["ansible.builtin.validate_argument_spec"]["argument_spec"]["colors_notify_outcome"]
                           ["choices"])


def test_every_changing_template_asks_for_the_typed_confirmation():
    for template in CONFIG["colors_awx_job_templates"]:
        variables = {q["variable"] for q in template["survey"]}
        if template["job_type"] == "run" and template["key"] not in ("verify", "notify"):
            assert "colors_confirm_environment" in variables, template["name"]


def test_the_awx_playbook_refuses_to_run_without_a_controller():
    result = ansible_playbook(str(REPO / "playbooks" / "awx.yml"))
    assert result.returncode != 0
    assert "CONTROLLER_HOST is not set" in result.stdout and "Nothing was changed" in result.stdout


# --- execution environment ------------------------------------------------------------------------------------

EE = yaml.safe_load((REPO / "execution-environment.yml").read_text())


def _pin(requirements: str, name: str) -> str:
    return re.search(rf"^{re.escape(name)}==(\S+)", requirements, flags=re.M).group(1)


def _names(requirements: str) -> set[str]:
    return set(re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^]]*\])?==", requirements, flags=re.M))


def test_the_execution_environment_uses_the_projects_pins():
    deps = EE["dependencies"]
    requirements = (REPO / "requirements" / "runtime.txt").read_text()
    assert deps["python"] == "requirements/runtime.txt" and deps["galaxy"] == "collections/requirements.yml"
    assert deps["ansible_core"]["package_pip"] == f"ansible-core=={_pin(requirements, 'ansible-core')}"
    assert re.fullmatch(r"ansible-runner==\d+\.\d+\.\d+", deps["ansible_runner"]["package_pip"])
    assert (REPO / deps["system"]).is_file()


def test_the_execution_environment_carries_the_terraform_the_project_is_tested_with():
    steps = "\n".join(EE["additional_build_steps"]["append_final"])
    ee_version = re.search(r"ARG TERRAFORM_VERSION=(\S+)", steps).group(1)
    terraform = shutil.which("terraform")
    assert terraform, "terraform is not installed: this comparison did not run"
    local = json.loads(subprocess.run([terraform, "version", "-json"], capture_output=True, text=True,
                                      check=True).stdout)["terraform_version"]
    assert ee_version == local


def test_the_execution_environment_carries_the_helm_of_the_runner_image():
    steps = "\n".join(EE["additional_build_steps"]["append_final"])
    assert re.search(r"ARG HELM_VERSION=(\S+)", steps).group(1) == PLATFORM["versions"]["helm"]
    assert "helm.tgz.sha256sum | sha256sum -c -" in steps and "/usr/local/bin/helm" in steps


def test_ansible_builder_renders_the_build_context(tmp_path):
    builder = STATE / "bin" / "ansible-builder"
    assert builder.exists(), "ansible-builder is not installed (`make toolchain`): this check did not run"
    result = run([str(builder), "create", "-f", str(REPO / "execution-environment.yml"), "-c", str(tmp_path / "ctx"),
                  "--output-filename", "Containerfile"])
    assert result.returncode == 0, result.stdout + result.stderr
    build = tmp_path / "ctx" / "_build"
    # The runtime lock goes in, hashes and all; nothing of the development set does.
    runtime = (REPO / "requirements" / "runtime.txt").read_text()
    assert (build / "requirements.txt").read_text() == runtime
    assert "--hash=sha256:" in runtime and {"ansible", "ansible-core", "kubernetes", "boto3"} <= _names(runtime)
    dev_only = _names((REPO / "requirements" / "dev.txt").read_text()) - _names(runtime)
    assert {"molecule", "moto", "pytest", "ansible-lint", "playwright", "ruff"} <= dev_only
    assert (build / "requirements.yml").read_text() == (REPO / "collections" / "requirements.yml").read_text()
    containerfile = (tmp_path / "ctx" / "Containerfile").read_text()
    assert 'ARG EE_BASE_IMAGE="quay.io/centos/centos:stream9"' in containerfile
    assert "sha256sum -c" in containerfile
    assert "get.helm.sh/helm-v${HELM_VERSION}-linux-amd64.tar.gz" in containerfile


@pytest.mark.parametrize("template", CONFIG["colors_awx_job_templates"], ids=lambda t: t["key"])
def test_each_survey_question_is_well_formed(template):
    for question in template["survey"]:
        assert {"question_name", "variable", "type", "required"} <= set(question), question
        assert question["type"] in ("text", "integer", "multiplechoice", "password")


def test_each_job_template_gets_the_aws_role_credential_of_its_environment_and_no_key(tmp_path):
    """playbooks/awx.yml's own expressions, run: the credential names and role ARNs it creates, and the
    credentials it attaches to each job template of each environment."""
    play = yaml.safe_load((REPO / "playbooks" / "awx.yml").read_text())[0]
    made = next(t for t in play["tasks"] if "awx.awx.credential" in t and "loop" in t)
    attached = next(t for t in play["tasks"] if "awx.awx.job_template" in t)
    assert made["awx.awx.credential"]["credential_type"] == "{{ colors_awx_aws_credential_type.name }}"
    probe = [{"name": "Probe", "hosts": "localhost", "connection": "local", "gather_facts": False,
              "vars_files": [str(REPO / "awx" / "controller.yml")], "vars": play["vars"], "tasks": [
                  {"ansible.builtin.debug": {"msg": {"name": made["awx.awx.credential"]["name"],
                                                     "inputs": made["awx.awx.credential"]["inputs"]}},
                   "loop": made["loop"], "vars": made["vars"]},
                  {"ansible.builtin.debug": {"msg": {"template": "{{ template.key }} ({{ env }})",
                                                     "credentials": attached["awx.awx.job_template"]["credentials"]}},
                   "loop": attached["loop"], "vars": attached["vars"]}]}]
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "inventories").symlink_to(REPO / "inventories")  # playbook_dir/../inventories, as in the repo
    (tmp_path / "playbooks" / "probe.yml").write_text(yaml.safe_dump(probe))
    result = ansible_playbook(str(tmp_path / "playbooks" / "probe.yml"), ANSIBLE_STDOUT_CALLBACK="json")
    assert result.returncode == 0, result.stdout[-3000:]
    credentials, templates = [[r["msg"] for r in task["hosts"]["localhost"]["results"]]
                              for task in json.loads(result.stdout)["plays"][0]["tasks"]]
    assert {c["name"]: c["inputs"]["role_arn"].strip() for c in credentials} == {
        f"Colors AWS {role} ({env})": f"arn:aws:iam::{account}:role/colors-{env}-{role}"
        for env, account in (("staging", "111111111111"), ("prod", "222222222222"))
        for role in ("deploy", "rollback", "infrastructure")}
    assert {c["inputs"]["credential_source"] for c in credentials} == {"Ec2InstanceMetadata"}
    kinds = {"deploy": "deploy", "verify": "deploy", "rollback": "rollback",
             "rotate-secrets": "rollback",  # pragma: allowlist secret
             "infrastructure-plan": "infrastructure", "infrastructure-apply": "infrastructure"}
    expected = {f"{key} ({env})": [f"Colors AWS {kind} ({env})"] for env in ("staging", "prod")
                for key, kind in kinds.items()}
    expected |= {f"notify ({env})": ["Colors notification webhook"] for env in ("staging", "prod")}
    assert {t["template"]: t["credentials"] for t in templates} == expected
    # No credential type of AWX's static keys, no key input.
    assert "Amazon Web Services" not in (REPO / "awx" / "controller.yml").read_text()
    fields = CONFIG["colors_awx_aws_credential_type"]["inputs"]["fields"]
    assert [f["id"] for f in fields] == ["role_arn", "credential_source"] and not any(f.get("secret") for f in fields)
