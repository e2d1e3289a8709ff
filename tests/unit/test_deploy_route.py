"""Where deploys run, said the same way everywhere: the EKS API endpoint is private, so every job that talks to a
cluster runs on a self-hosted runner inside that environment's VPC (label colors-deploy-<env>, from
terraform/modules/deploy_runners), and GitHub's hosted runners run only what needs no cluster. Terraform, the
workflows' runs-on, the Actions engine's runner mapping, AWX and the docs are held together here."""

from __future__ import annotations

import re

import pytest
import yaml
from colors_platform import workflows
from helpers import REPO

WORKFLOWS = REPO / ".github" / "workflows"
# The make targets that talk to an environment's cluster (each needs a route to its private API endpoint).
CLUSTER_TARGETS = ("make deploy", "make rollback", "make rotate-secrets", "make kubeconfig", "make monitoring",
                   "make freeze", "make unfreeze")


def _jobs():
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for name, job in (yaml.safe_load(path.read_text())["jobs"] or {}).items():
            if "steps" in job:
                yield path.name, name, job


def _talks_to_a_cluster(job: dict) -> bool:
    return any(target in str(step.get("run", "")) for step in job["steps"] for target in CLUSTER_TARGETS)


CLUSTER_JOBS = [(wf, name, job) for wf, name, job in _jobs() if _talks_to_a_cluster(job)]


def test_the_api_endpoint_is_private_only():
    cluster = (REPO / "terraform" / "modules" / "cluster" / "main.tf").read_text()
    assert re.search(r"endpoint_private_access\s*=\s*true", cluster)
    assert re.search(r"endpoint_public_access\s*=\s*false", cluster)
    assert "public_access_cidrs" not in cluster


def test_terraform_gives_the_runners_their_label_and_a_way_into_the_api():
    stack = (REPO / "terraform" / "stack" / "main.tf").read_text()
    block = stack.split('module "deploy_runners" {', 1)[1].split("\n}\n", 1)[0]
    block = re.sub(r" +=\s+", " = ", block)  # as terraform fmt aligns it or not
    assert 'label = "colors-deploy-${var.environment}"' in block
    assert "cluster_security_group_id = module.cluster.cluster_security_group_id" in block
    runners = (REPO / "terraform" / "modules" / "deploy_runners" / "main.tf").read_text()
    ingress = runners.split('resource "aws_vpc_security_group_ingress_rule" "cluster_api" {', 1)[1].split("\n}\n")[0]
    assert "referenced_security_group_id = aws_security_group.runners.id" in ingress and "443" in ingress
    assert 'output "deploy_runner"' in (REPO / "terraform" / "stack" / "outputs.tf").read_text()


def test_there_are_cluster_jobs_in_every_deploying_workflow():
    assert {wf for wf, _, _ in CLUSTER_JOBS} == {"deploy.yml", "rollback.yml", "rotate-secrets.yml", "freeze.yml"}


@pytest.mark.parametrize(("workflow", "name", "job"), CLUSTER_JOBS, ids=[f"{w}:{n}" for w, n, _ in CLUSTER_JOBS])
def test_every_job_that_talks_to_a_cluster_runs_inside_its_environments_vpc(workflow, name, job):
    runs_on = job["runs-on"]
    assert isinstance(runs_on, list) and "self-hosted" in runs_on, f"{workflow}:{name} runs on {runs_on}"
    labels = [label for label in runs_on if str(label).startswith("colors-deploy-")]
    assert len(labels) == 1, f"{workflow}:{name}: one colors-deploy-<env> label, got {runs_on}"
    # The runner's environment is the job's GitHub environment (rollback and rotation use <env>-rollback).
    environment = str(job["environment"]).removesuffix("-rollback")
    assert labels[0] == f"colors-deploy-{environment}", (labels[0], job["environment"])


def test_jobs_on_githubs_hosted_runners_never_talk_to_a_cluster():
    for workflow, name, job in _jobs():
        if not isinstance(job["runs-on"], list):
            assert not _talks_to_a_cluster(job), f"{workflow}:{name} runs on {job['runs-on']} but needs a cluster"


def test_the_actions_engine_here_runs_every_label_the_workflows_ask_for():
    asked = set()
    for _, _, job in _jobs():
        for label in job["runs-on"] if isinstance(job["runs-on"], list) else [job["runs-on"]]:
            if label in ("self-hosted", "linux"):
                continue
            for environment in ("staging", "prod"):
                asked.add(re.sub(r"\$\{\{ *(inputs|matrix)\.environment *\}\}", environment, str(label)))
    assert asked == set(workflows.RUNNER_LABELS)


def test_awx_and_the_docs_say_the_same():
    topology = " ".join((REPO / "docs" / "network-topology.md").read_text().split())
    pipelines = " ".join((REPO / "docs" / "pipelines.md").read_text().split())
    for doc in (topology, pipelines):
        assert "colors-deploy-<env>" in doc and "private" in doc
        assert "AWX" in doc and "execution nodes" in doc
    assert "endpoint_public_access = false" in topology
