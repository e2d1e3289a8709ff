"""The AWX job templates of awx/controller.yml, launched as AWX launches a job (awx_launch): ansible-runner on a
private data directory, the survey's answers, the credential environment, the operations toolchain's ansible. The
inventory is the local one: the templates of staging and prod differ only by their inventory. Run in the order of
the AWX workflow: deploy → verify → (rollback) → notify. (The infrastructure plan template:
test_awx_infrastructure.py, beside the other runs on the local Terraform state.)"""

from __future__ import annotations

import pytest
from awx_launch import launch, output
from helpers import APP_VERSION, image_as

pytestmark = [pytest.mark.platform, pytest.mark.usefixtures("worker_node")]
OTHER = f"{APP_VERSION}-awx.1"


@pytest.fixture(scope="module")
def other_version() -> str:
    """A second release of the tree's image, loaded into the worker node, for the rollback to leave."""
    return image_as(OTHER)


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


def test_a_survey_without_its_confirmation_stops_before_anything_changes(k8s, execution_environment, tmp_path):
    before = serving_versions(k8s)
    job = launch(execution_environment, tmp_path, "deploy",
                 {"app_release_version": APP_VERSION, "colors_confirm_environment": "prod"})
    assert job.status == "failed"
    assert "colors_confirm_environment" in output(job)
    assert serving_versions(k8s) == before
