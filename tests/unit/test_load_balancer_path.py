"""The path from the ALB to the pods, as the roles render it for staging and prod: the TargetGroupBinding points the
controller at the Service app_release creates, and the network policy admits the load balancer's subnets on the port
the pods listen on - no ingress controller namespace that does not exist. The Terraform side (security groups, the
controller's role) is held on the plans by tests/integration/test_terraform_plans.py."""

from __future__ import annotations

import pytest
import yaml
from helpers import REPO, inventory_variables, role_template

APP_RELEASE = yaml.safe_load((REPO / "roles" / "app_release" / "defaults" / "main.yml").read_text())


@pytest.mark.parametrize("environment", ["staging", "prod"])
def test_the_target_group_binding_registers_the_pods_of_the_service_app_release_creates(environment):
    (binding,) = role_template("cluster_bootstrap", "target-group-binding.yml.j2", environment,
                               cluster_bootstrap_target_group_arn="arn:aws:elasticloadbalancing:eu-west-1:1:tg/x/1")
    (service,) = role_template("app_release", "service.yml.j2", environment)
    assert binding["spec"]["targetType"] == "ip"
    assert binding["metadata"]["namespace"] == service["metadata"]["namespace"]
    assert binding["spec"]["serviceRef"] == {"name": service["metadata"]["name"],
                                             "port": service["spec"]["ports"][0]["port"]}


@pytest.mark.parametrize("environment", ["staging", "prod"])
def test_the_app_admits_only_the_load_balancers_subnets_on_its_own_port(environment):
    policies = {p["metadata"]["name"]: p for p in role_template("cluster_bootstrap", "network-policies.yml.j2",
                                                                  environment)}
    (rule,) = policies["allow-load-balancer-to-app"]["spec"]["ingress"]
    cidrs = inventory_variables(REPO / "inventories" / environment)["cluster_bootstrap_load_balancer_cidrs"]
    assert rule["from"] == [{"ipBlock": {"cidr": cidr}} for cidr in cidrs]
    assert rule["ports"] == [{"protocol": "TCP", "port": APP_RELEASE["app_release_container_port"]}]
    assert not [p for p in policies.values() for r in p["spec"].get("ingress", []) for f in r["from"]
                if "ingress" in str(f.get("namespaceSelector", ""))]


def test_without_a_load_balancer_cidr_the_policy_admits_nothing():
    """A rule whose `from` is empty admits every source: with no CIDR there is no rule at all."""
    policies = {p["metadata"]["name"]: p for p in role_template("cluster_bootstrap", "network-policies.yml.j2",
                                                                  "staging", cluster_bootstrap_load_balancer_cidrs=[])}
    assert policies["allow-load-balancer-to-app"]["spec"]["ingress"] == []


def test_the_controller_is_installed_where_an_alb_is_and_pinned():
    defaults = yaml.safe_load((REPO / "roles" / "cluster_bootstrap" / "defaults" / "main.yml").read_text())
    assert defaults["cluster_bootstrap_load_balancer_controller"] is True
    assert defaults["cluster_bootstrap_load_balancer_controller_chart_version"].count(".") == 2
    local = inventory_variables(REPO / "inventories" / "local")
    assert local["cluster_bootstrap_load_balancer_controller"] is False  # a NodePort, no ALB
