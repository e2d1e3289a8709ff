"""The AWX infrastructure plan template of awx/controller.yml, launched as AWX launches a job (awx_launch). Its own
module, in the suite's side lane with test_infrastructure and the infrastructure role's Molecule scenario: all of them
take the local environment's Terraform state lock, so they run one after another (tools/run_suite.py)."""

from __future__ import annotations

import pytest
from awx_launch import launch, output

pytestmark = pytest.mark.platform


def test_the_infrastructure_plan_template_runs_in_check_mode(execution_environment, tmp_path):
    job = launch(execution_environment, tmp_path, "infrastructure-plan")
    out = output(job)
    assert (job.status, job.rc) == ("successful", 0), out[-4000:]
    assert "--check" in job.config.command
    assert "Plan: " in out or "No changes." in out
