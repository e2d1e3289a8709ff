"""The AWX job templates of awx/controller.yml, launched as AWX launches a job: ansible-runner (the library AWX
runs its jobs with) on a private data directory, the project as the job's project directory, the template's playbook
and job type (check → --check), the controller's extra vars plus the survey's answers (its defaults where a question
is left empty), the credential's injected environment, and the ansible-playbook of the operations toolchain (the
execution environment's requirement set, requirements/runtime.txt). The inventory is the local one: the templates of
staging and prod differ only by their inventory. Run in the order of the AWX workflow: deploy → verify → (rollback)
→ notify."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import ansible_runner
import pytest
import yaml
from helpers import APP_VERSION, REPO, image_as, run

pytestmark = [pytest.mark.platform, pytest.mark.usefixtures("worker_node")]
CONFIG = yaml.safe_load((REPO / "awx" / "controller.yml").read_text())
TEMPLATES = {t["key"]: t for t in CONFIG["colors_awx_job_templates"]}
ENVIRONMENT = "local"
OTHER = f"{APP_VERSION}-awx.1"


@pytest.fixture(scope="module")
def execution_environment() -> Path:
    """The operations toolchain's Python environment (the EE's requirement set), installed as `make` installs it."""
    made = run(["make", "--no-print-directory", "ops-toolchain"], timeout=900)
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    key = hashlib.sha256((REPO / "requirements" / "runtime.txt").read_bytes()).hexdigest()[:12]
    venv = Path(os.environ.get("COLORS_CACHE_DIR", Path.home() / ".cache" / "colors-deploy")) / f"ops-{key}"
    assert (venv / "bin" / "ansible-playbook").exists(), venv
    return venv


@pytest.fixture(scope="module")
def other_version() -> str:
    """A second release of the tree's image, loaded into the worker node, for the rollback to leave."""
    return image_as(OTHER)


def survey_answers(template: dict, answers: dict) -> dict:
    """What AWX passes for the survey: each answer given, else the question's default; a required question without
    either refuses the launch, as AWX does."""
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


def launch(ee: Path, tmp_path: Path, key: str, answers: dict | None = None, extra_data: dict | None = None,
           credentials_env: dict | None = None) -> ansible_runner.Runner:
    template = TEMPLATES[key]
    extravars = {**CONFIG["colors_awx_extra_vars"], **(extra_data or {}),
                 **survey_answers(template, {"colors_confirm_environment": ENVIRONMENT, **(answers or {})})}
    data_dir = tmp_path / f"job-{key}"
    data_dir.mkdir(exist_ok=True)
    return ansible_runner.run(
        private_data_dir=str(data_dir), project_dir=str(REPO), playbook=template["playbook"],
        inventory=str(REPO / "inventories" / ENVIRONMENT), extravars=extravars,
        envvars={"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
                 "PATH": f"{ee / 'bin'}:{REPO / '.platform' / 'bin'}:/usr/local/bin:/usr/bin:/bin",
                 # Terraform's providers come from this machine's mirror (an EE gets them from the registry).
                 "TF_CLI_CONFIG_FILE": str(REPO / ".platform" / "terraform.rc"),
                 **(credentials_env or {})},
        cmdline="--check" if template["job_type"] == "check" else None,
        quiet=True, timeout=900)


def output(job: ansible_runner.Runner) -> str:
    return job.stdout.read()


def serving_versions(k8s) -> set[str]:
    core, _, _ = k8s
    pods = core.list_namespaced_pod("colors", label_selector="app.kubernetes.io/name=colors").items
    return {p.metadata.labels["app.kubernetes.io/version"] for p in pods if p.metadata.deletion_timestamp is None}


def test_the_deploy_workflow_templates_run_as_awx_launches_them(k8s, execution_environment, other_version,
                                                                 webhook, tmp_path):
    ee = execution_environment
    for version in (APP_VERSION, other_version):
        job = launch(ee, tmp_path, "deploy", {"app_release_version": version})
        out = output(job)
        assert (job.status, job.rc) == ("successful", 0), out[-4000:]
        assert f"Colors {version} is released" in " ".join(out.split())
        # The run's Python is the execution environment's.
        assert job.config.command[0] == "ansible-playbook" and job.config.env["PATH"].startswith(f"{ee}/bin:")
    assert serving_versions(k8s) == {other_version}
    # The release that changed the pods reported its progress while it ran (the action plugin prints the engine's
    # progress file as it grows).
    assert "[release] " in out and f"rolling colors to localhost/colors:{other_version}" in out, out[-4000:]
    assert "colors: rollout healthy after" in out

    job = launch(ee, tmp_path, "verify", {"app_release_version": other_version})
    assert (job.status, job.rc) == ("successful", 0), output(job)[-4000:]

    # Left empty, the survey restores the previous good release.
    job = launch(ee, tmp_path, "rollback")
    assert (job.status, job.rc) == ("successful", 0), output(job)[-4000:]
    assert serving_versions(k8s) == {APP_VERSION}

    url, received = webhook
    job = launch(ee, tmp_path, "notify", extra_data={"colors_notify_outcome": "rolled_back",
                                                     "app_release_version": other_version},
                 credentials_env={"COLORS_NOTIFY_WEBHOOK_URL": url})
    assert (job.status, job.rc) == ("successful", 0), output(job)[-4000:]
    assert [m["outcome"] for m in received] == ["rolled_back"]


def test_the_verify_template_fails_when_the_expected_version_is_not_serving(k8s, execution_environment, tmp_path):
    job = launch(execution_environment, tmp_path, "verify", {"app_release_version": "9.9.9"})
    assert job.status == "failed" and job.rc != 0
    assert "9.9.9" in output(job)


def test_the_infrastructure_plan_template_runs_in_check_mode(execution_environment, tmp_path):
    job = launch(execution_environment, tmp_path, "infrastructure-plan")
    out = output(job)
    assert (job.status, job.rc) == ("successful", 0), out[-4000:]
    assert "--check" in job.config.command
    assert "Plan: " in out or "No changes." in out


def test_a_survey_without_its_confirmation_stops_before_anything_changes(k8s, execution_environment, tmp_path):
    before = serving_versions(k8s)
    job = launch(execution_environment, tmp_path, "deploy",
                 {"app_release_version": APP_VERSION, "colors_confirm_environment": "prod"})
    assert job.status == "failed"
    assert "colors_confirm_environment" in output(job)
    assert serving_versions(k8s) == before
