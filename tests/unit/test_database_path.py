"""The path from the pods to the database, as cluster_bootstrap renders it for staging and prod: the pods that the
network policies let reach the database - the application's and its migration Jobs' - are those the
SecurityGroupPolicies give the security group the database admits (EKS security groups for pods), and no other.
The Terraform side (the database admits that group and the runners', no subnet) is held on the plans by
tests/integration/test_terraform_plans.py; the staging rehearsal applies the policies with the group's real id."""

from __future__ import annotations

import pytest
from helpers import REPO, inventory_variables, role_template

GROUP = "sg-0123456789abcdef0"


@pytest.mark.parametrize("environment", ["staging", "prod"])
def test_the_pods_allowed_to_the_database_are_those_given_its_security_group(environment):
    policies = {p["metadata"]["name"]: p for p in role_template("cluster_bootstrap", "network-policies.yml.j2",
                                                                  environment)}
    to_database = sorted(tuple(sorted(p["spec"]["podSelector"]["matchLabels"].items())) for p in policies.values()
                         if any(5432 in [port.get("port") for port in rule.get("ports", [])]
                                for rule in p["spec"].get("egress", [])))
    given = role_template("cluster_bootstrap", "security-group-policies.yml.j2", environment,
                          cluster_bootstrap_pod_security_group_id=GROUP)
    namespace = inventory_variables(REPO / "inventories" / environment).get("cluster_bootstrap_app_namespace", "colors")
    assert {g["kind"] for g in given} == {"SecurityGroupPolicy"} and len(to_database) == 2
    assert sorted(tuple(sorted(g["spec"]["podSelector"]["matchLabels"].items())) for g in given) == to_database
    assert all(g["spec"]["securityGroups"] == {"groupIds": [GROUP]} for g in given)
    assert {g["metadata"]["namespace"] for g in given} == {namespace}


@pytest.mark.parametrize("environment", ["staging", "prod"])
def test_staging_and_prod_name_the_security_group_terraform_makes(environment):
    """terraform/modules/app_pods names it colors-<env>-app-pods; the plans check the same name."""
    inventory = inventory_variables(REPO / "inventories" / environment)
    assert inventory["cluster_bootstrap_pod_security_group"] == "colors-{{ colors_environment }}-app-pods"
