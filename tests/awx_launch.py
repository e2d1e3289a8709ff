"""AWX job templates of awx/controller.yml launched as AWX launches a job (imported as `awx_launch`): ansible-runner
(the library AWX runs its jobs with) on a private data directory, the project as the job's project directory, the
template's playbook and job type (check → --check), the controller's extra vars plus the survey's answers (its
defaults where a question is left empty), the credentials' injected environment and files, and the ansible-playbook
of the operations toolchain (the execution environment's requirement set, requirements/runtime.txt)."""

from __future__ import annotations

from pathlib import Path

import ansible_runner
import jinja2
import yaml
from helpers import REPO

CONFIG = yaml.safe_load((REPO / "awx" / "controller.yml").read_text())
TEMPLATES = {t["key"]: t for t in CONFIG["colors_awx_job_templates"]}


def survey_answers(template: dict, answers: dict, environment: str) -> dict:
    """What AWX passes for the survey: each answer given, else the question's default; a required question without
    either refuses the launch, as AWX does. The confirmation is the environment's name unless answered."""
    answers = {"colors_confirm_environment": environment, **answers}
    extra = {}
    for question in template["survey"]:
        name = question["variable"]
        if name in answers:
            extra[name] = answers[name]
        elif "default" in question:
            extra[name] = question["default"]
        else:
            assert not question["required"], f"AWX would refuse the launch: {name} is required"
    return extra


def injected(credential_type: dict, inputs: dict, directory: Path) -> dict[str, str]:
    """The environment a credential of this type gives a job, rendered as AWX renders its injectors: the file
    injector written to a private file (tower.filename), then the env injectors. The types are declared through
    Ansible, which strips their {% raw %} first."""
    literal = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701 - not HTML

    def render(template: str, **values: object) -> str:
        return literal.from_string(literal.from_string(template).render()).render(**inputs, **values)

    injectors = credential_type["injectors"]
    tower = {}
    if "file" in injectors:
        path = directory / "credential"
        path.write_text(render(injectors["file"]["template"]))
        path.chmod(0o600)
        tower["filename"] = str(path)
    return {name: render(value, tower=tower) for name, value in injectors.get("env", {}).items()}


def launch(ee: Path, tmp_path: Path, key: str, answers: dict | None = None, extra_data: dict | None = None,
           credentials_env: dict | None = None, environment: str = "local") -> ansible_runner.Runner:
    template = TEMPLATES[key]
    extravars = {**CONFIG["colors_awx_extra_vars"], **(extra_data or {}),
                 **survey_answers(template, answers or {}, environment)}
    data_dir = tmp_path / f"job-{key}"
    data_dir.mkdir(exist_ok=True)
    return ansible_runner.run(
        private_data_dir=str(data_dir), project_dir=str(REPO), playbook=template["playbook"],
        inventory=str(REPO / "inventories" / environment), extravars=extravars,
        envvars={"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
                 "PATH": f"{ee / 'bin'}:{REPO / '.platform' / 'bin'}:/usr/local/bin:/usr/bin:/bin",
                 # Terraform's providers come from this machine's mirror (an EE gets them from the registry).
                 "TF_CLI_CONFIG_FILE": str(REPO / ".platform" / "terraform.rc"),
                 **(credentials_env or {})},
        cmdline="--check" if template["job_type"] == "check" else None,
        quiet=True, timeout=900)


def output(job: ansible_runner.Runner) -> str:
    return job.stdout.read()
