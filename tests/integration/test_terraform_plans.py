"""The staging and prod plans, as Terraform computes them against the local AWS API, hold what moto cannot apply or
enforce: EKS authentication mode API with its access entries (moto has no access-entry API), the private endpoint,
and trust policies scoped to the repository and the GitHub environments the workflows deploy from.

Each plan is `terraform plan -refresh=false` of a fresh state with the environment's own tfvars, against moto
(only the endpoint swapped), read back with `terraform show -json`."""

from __future__ import annotations

import json

import pytest
import yaml
from helpers import REPO, terraform_plan

pytestmark = pytest.mark.platform
BOOTSTRAP_DEFAULTS = yaml.safe_load((REPO / "roles" / "cluster_bootstrap" / "defaults" / "main.yml").read_text())
DEPLOYERS = BOOTSTRAP_DEFAULTS["cluster_bootstrap_deployer_group"]
ONCALL = BOOTSTRAP_DEFAULTS["cluster_bootstrap_oncall_group"]


def _tfvars(environment: str) -> dict[str, str]:
    values = {}
    for line in (REPO / "terraform" / "environments" / environment / "terraform.tfvars").read_text().splitlines():
        key, _, value = line.partition("=")
        if value and not line.lstrip().startswith("#"):
            value = value.strip()
            values[key.strip()] = value if value.startswith("[") else value.strip('"')
    return values


@pytest.fixture(scope="module", params=["staging", "prod"])
def plan(request, tmp_path_factory):
    """(environment, {address: planned values}) of a fresh state of the environment."""
    return request.param, terraform_plan(request.param, tmp_path_factory.mktemp(f"plan-{request.param}"))


def test_the_cluster_authenticates_with_access_entries_behind_a_private_endpoint(plan):
    _, planned = plan
    cluster = planned["module.cluster.aws_eks_cluster.this"]
    assert cluster["access_config"][0]["authentication_mode"] == "API"
    assert cluster["vpc_config"][0]["endpoint_public_access"] is False
    assert cluster["vpc_config"][0]["endpoint_private_access"] is True


def test_the_access_entries_map_each_role_to_the_group_the_rbac_binds(plan):
    environment, planned = plan
    entry = "module.cluster_access.aws_eks_access_entry.this[\"{}\"]".format
    assert planned[entry("deploy")]["kubernetes_groups"] == [DEPLOYERS]
    assert planned[entry("rollback")]["kubernetes_groups"] == [DEPLOYERS]
    assert planned[entry("oncall")]["kubernetes_groups"] == [ONCALL]
    assert planned[entry("oncall")]["principal_arn"] == _tfvars(environment)["oncall_principal_arn"]
    admin = planned["module.cluster_access.aws_eks_access_policy_association.this[\"infrastructure\"]"]
    assert admin["policy_arn"] == "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
    assert admin["access_scope"] == [{"namespaces": None, "type": "cluster"}]
    # Only the infrastructure role (bootstrap) is cluster admin.
    associations = [a for a in planned if "aws_eks_access_policy_association" in a]
    assert associations == ["module.cluster_access.aws_eks_access_policy_association.this[\"infrastructure\"]"]


def _trust(planned: dict, role: str, environment: str) -> dict[str, list[str]]:
    """The conditions of the role's GitHub statement, after checking that its only other statement is AWX's:
    sts:AssumeRole from AWX's own role, unconditioned (the deploy, verify, rollback and rotation job templates)."""
    statements = planned[f"module.pipeline_identity.data.aws_iam_policy_document.trust[\"{role}\"]"]["statement"]
    statement, *others = statements
    awx = [(o["sid"], o["actions"], [(p["type"], p["identifiers"]) for p in o["principals"]], o.get("condition") or [])
           for o in others]
    assert awx == ([] if role == "release" else [
        ("AWX", ["sts:AssumeRole"], [("AWS", json.loads(_tfvars(environment)["awx_principal_arns"]))], [])])
    assert statement["actions"] == ["sts:AssumeRoleWithWebIdentity"]
    assert [p["type"] for p in statement["principals"]] == ["Federated"]
    return {c["variable"].split(":", 1)[1]: (c["test"], c["values"]) for c in statement["condition"]}


def test_the_pipeline_roles_trust_only_this_repository_and_the_environments_the_workflows_use(plan):
    environment, planned = plan
    repository = _tfvars(environment)["github_repository"]
    workflows = {p.name: yaml.safe_load(p.read_text()) for p in (REPO / ".github" / "workflows").glob("*.yml")}
    assert workflows["deploy.yml"]["jobs"][environment]["environment"] == environment
    assert workflows["rollback.yml"]["jobs"]["rollback"]["environment"] == "${{ inputs.environment }}-rollback"
    assert _trust(planned, "deploy", environment) == {
        "sub": ("StringEquals", [f"repo:{repository}:environment:{environment}"]),
        "aud": ("StringEquals", ["sts.amazonaws.com"])}
    assert _trust(planned, "rollback", environment) == {
        "sub": ("StringEquals", [f"repo:{repository}:environment:{environment}-rollback"]),
        "aud": ("StringEquals", ["sts.amazonaws.com"])}
    assert _trust(planned, "release", environment) == {"sub": ("StringLike", [f"repo:{repository}:ref:refs/tags/v*"]),
                                          "aud": ("StringEquals", ["sts.amazonaws.com"])}
    provider = planned["module.pipeline_identity.aws_iam_openid_connect_provider.github"]
    assert provider["url"] == "https://token.actions.githubusercontent.com"
    assert provider["client_id_list"] == ["sts.amazonaws.com"]


def test_no_static_key_and_no_public_route_to_the_api(plan):
    _, planned = plan
    assert not [a for a in planned if a.split(".")[-2] in ("aws_iam_access_key", "aws_iam_user")]
    ingress = planned["module.deploy_runners.aws_vpc_security_group_ingress_rule.cluster_api"]
    assert (ingress["from_port"], ingress["to_port"], ingress["ip_protocol"]) == (443, 443, "tcp")
    assert ingress["cidr_ipv4"] is None  # from the runners' security group, not from an address range


def test_awx_credentials_name_the_roles_this_plan_creates_in_the_inventorys_account(plan):
    environment, planned = plan
    config = yaml.safe_load((REPO / "awx" / "controller.yml").read_text())
    inventory = yaml.safe_load((REPO / "inventories" / environment / "group_vars" / "all" / "main.yml").read_text())
    account = inventory["colors_aws_account_id"]
    roles = {role: planned[f'module.pipeline_identity.aws_iam_role.pipeline["{role}"]']["name"]
             for role in ("deploy", "rollback")}
    roles["infrastructure"] = planned["module.pipeline_identity.aws_iam_role.infrastructure"]["name"]
    assert config["colors_awx_aws_roles"] == list(roles)
    for role, name in roles.items():
        arn = config["colors_awx_aws_role_arn"].format(account=account, env=environment, role=role)
        assert arn == f"arn:aws:iam::{account}:role/{name}"
    # AWX's own role, which the roles trust, is in the same account.
    assert {arn.split(":")[4] for arn in json.loads(_tfvars(environment)["awx_principal_arns"])} == {account}
