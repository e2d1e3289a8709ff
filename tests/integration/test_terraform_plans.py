"""The staging and prod plans, as Terraform computes them against the local AWS API, hold what moto cannot apply or
enforce: EKS authentication mode API with its access entries (moto has no access-entry API), the private endpoint,
and trust policies scoped to the repository and the GitHub environments the workflows deploy from.

Each plan is `terraform plan -refresh=false` of a fresh state with the environment's own tfvars, against moto
(only the endpoint swapped), read back with `terraform show -json`."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from helpers import REPO, inventory_variables, terraform_plan, tfvars

pytestmark = pytest.mark.platform
BOOTSTRAP_DEFAULTS = yaml.safe_load((REPO / "roles" / "cluster_bootstrap" / "defaults" / "main.yml").read_text())
DEPLOYERS = BOOTSTRAP_DEFAULTS["cluster_bootstrap_deployer_group"]
ONCALL = BOOTSTRAP_DEFAULTS["cluster_bootstrap_oncall_group"]


def _tfvars(environment: str) -> dict[str, str]:
    """The environment's tfvars, strings unquoted (lists stay as written)."""
    return {k: v if v.startswith("[") else v.strip('"') for k, v in tfvars(environment).items()}


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
    if environment == "staging":  # the registry the release pushes to; prod's receives its images by replication
        assert _trust(planned, "release", environment) == {
            "sub": ("StringLike", [f"repo:{repository}:ref:refs/tags/v*"]),
            "aud": ("StringEquals", ["sts.amazonaws.com"])}
    else:
        assert not [a for a in planned if "release" in a and a.startswith("module.pipeline_identity.")]
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


# --- AWS as it behaves, where moto accepts what AWS refuses ------------------------------------------------------

def _module(shown: dict, path: tuple[str, ...]) -> dict:
    module = shown["configuration"]["root_module"]
    for name in path:
        module = module["module_calls"][name]["module"]
    return module


def _source(shown: dict, path: tuple[str, ...], reference: str) -> str:
    """The address of the resource or data source that a reference made in module `path` comes from, followed
    through module variables and outputs."""
    parts = reference.split(".")
    if parts[0] == "var":
        call = _module(shown, path[:-1])["module_calls"][path[-1]]
        return _source(shown, path[:-1], call["expressions"][parts[1]]["references"][0])
    if parts[0] == "module":
        inner = (*path, parts[1])
        return _source(shown, inner, _module(shown, inner)["outputs"][parts[2]]["expression"]["references"][0])
    local = ".".join(parts[:3] if parts[0] == "data" else parts[:2])
    return ".".join([*(f"module.{p}" for p in path), local])


def _resources(shown: dict, kind: str, path: tuple[str, ...] = ()):
    """(module path, configuration) of every managed resource of a type, in every module."""
    module = _module(shown, path)
    for resource in module.get("resources", []):
        if resource["type"] == kind and resource["mode"] == "managed":
            yield path, resource
    for name in module.get("module_calls", {}):
        yield from _resources(shown, kind, (*path, name))


def _listed(value) -> list:
    return value if isinstance(value, list) else [value] if value else []


def test_every_log_groups_key_lets_cloudwatch_logs_use_it(plan):
    """AWS refuses to create a log group with a key whose policy does not grant the logs service (moto creates it):
    the first apply failed on the control plane's, and the cluster depends on it."""
    environment, planned = plan
    region = yaml.safe_load((REPO / "inventories" / environment / "group_vars" / "all" / "main.yml").read_text())[
        "colors_aws_region"]
    service = f"logs.{region}.amazonaws.com"
    groups = list(_resources(planned.shown, "aws_cloudwatch_log_group"))
    assert {resource["address"] for _, resource in groups} == {
        "aws_cloudwatch_log_group.control_plane", "aws_cloudwatch_log_group.app", "aws_cloudwatch_log_group.flow_logs",
        "aws_cloudwatch_log_group.waf"}
    for path, group in groups:
        name = ".".join([*(f"module.{p}" for p in path), group["address"]])
        key = _source(planned.shown, path, group["expressions"]["kms_key_id"]["references"][0])
        assert key.split(".")[-2] == "aws_kms_key", f"{name} is not encrypted with a key of this stack: {key}"
        (key,) = [a for a in planned if a.startswith(f"{key}[")]  # the key module's one instance
        assert planned[key]["policy"], f"the policy of {key} is not known at plan time"
        granted = {action for statement in json.loads(planned[key]["policy"])["Statement"]
                   if statement["Effect"] == "Allow" and service in _listed(statement["Principal"].get("Service"))
                   for action in _listed(statement["Action"])}
        assert {"kms:Encrypt*", "kms:Decrypt*", "kms:GenerateDataKey*"} <= granted, (
            f"{name} is encrypted with {key}, whose policy does not let {service} use it: {sorted(granted)}")


@pytest.fixture(scope="module")
def undelegated(tmp_path_factory):
    """Staging's plan for the first apply of a new environment: the zone is not delegated yet."""
    return terraform_plan("staging", tmp_path_factory.mktemp("plan-undelegated"), "dns_zone_delegated=false")


def test_the_certificate_is_validated_only_once_the_zone_is_delegated(plan, undelegated):
    """ACM validates a certificate only through a zone the parent delegates to: validating against the zone of the
    same apply held the first apply until ACM timed out. Its name servers are an output, to delegate to."""
    _, planned = plan
    for shown in (planned.shown, undelegated.shown):
        zone = _source(shown, (), shown["configuration"]["root_module"]["outputs"]["name_servers"]["expression"][
            "references"][0])
        assert zone == "module.edge.aws_route53_zone.this"
    assert "module.edge.aws_acm_certificate.this" in undelegated
    assert not [a for a in undelegated if "aws_acm_certificate_validation" in a or "aws_lb_listener.https" in a]
    assert undelegated["module.edge.aws_lb_listener.http_redirect"]["default_action"][0]["type"] == "redirect"
    # Delegated (the environments' tfvars): validated, then served on 443 with TLS 1.2+.
    assert "module.edge.aws_acm_certificate_validation.this[0]" in planned
    https = planned["module.edge.aws_lb_listener.https[0]"]
    assert (https["port"], https["protocol"]) == (443, "HTTPS")
    assert https["ssl_policy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    references = _references(planned.shown, ("edge",), "aws_lb_listener.https", "certificate_arn")
    assert "aws_acm_certificate_validation.this" in references[-1]


def test_the_database_pins_only_its_major_version_while_rds_upgrades_the_minors(plan):
    """With auto_minor_version_upgrade, RDS moves 16.6 to 16.x itself; a pinned minor made the next plan a
    downgrade. The parameter group's family follows the major."""
    _, planned = plan
    database = planned["module.data.aws_db_instance.this"]
    assert database["auto_minor_version_upgrade"] is True
    assert database["engine_version"].isdigit(), database["engine_version"]
    assert planned["module.data.aws_db_parameter_group.this"]["family"] == f"postgres{database['engine_version']}"


def _configured(shown: dict, path: tuple[str, ...], address: str) -> dict:
    """The configuration of one resource of module `path`."""
    (resource,) = [r for r in _module(shown, path)["resources"] if r["address"] == address]
    return resource


def _references(shown: dict, path: tuple[str, ...], address: str, attribute: str) -> list[str]:
    return _configured(shown, path, address)["expressions"][attribute]["references"]


def test_every_request_passes_aws_waf_and_the_load_balancer_logs_it(plan):
    environment, planned = plan
    acl = planned["module.edge.aws_wafv2_web_acl.this"]
    assert acl["scope"] == "REGIONAL"
    managed = {r["statement"][0]["managed_rule_group_statement"][0]["name"]: r for r in acl["rule"]
               if r["statement"][0]["managed_rule_group_statement"]}
    assert set(managed) == {"AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet",
                            "AWSManagedRulesAmazonIpReputationList", "AWSManagedRulesAnonymousIpList"}
    # The managed groups block (their own actions), none is left counting as a whole.
    assert all(r["override_action"][0]["none"] for r in managed.values())
    (rate,) = [r for r in acl["rule"] if r["statement"][0]["rate_based_statement"]]
    assert rate["action"][0]["block"]
    limit = rate["statement"][0]["rate_based_statement"][0]["limit"]
    assert limit == int(_tfvars(environment)["waf_requests_per_5_minutes"])
    shown = planned.shown
    assert _source(shown, ("edge",), _references(shown, ("edge",), "aws_wafv2_web_acl_association.alb",
                                                 "resource_arn")[0]) == "module.edge.aws_lb.this"
    (destination,) = _references(shown, ("edge",), "aws_wafv2_web_acl_logging_configuration.this",
                                 "log_destination_configs")[:1]
    log_group = _source(shown, ("edge",), destination)
    assert planned[log_group]["name"].startswith("aws-waf-logs-")  # the only names WAF delivers to

    load_balancer = planned["module.edge.aws_lb.this"]
    assert load_balancer["access_logs"][0]["enabled"] is True
    configured = _configured(shown, ("edge",), "aws_lb.this")
    bucket = _source(shown, ("edge",), configured["expressions"]["access_logs"][0]["bucket"]["references"][0])
    assert bucket == "module.edge.aws_s3_bucket.access_logs"
    policy = planned["module.edge.data.aws_iam_policy_document.access_logs"]["statement"]
    writers = {p["type"]: p["identifiers"] for s in policy if s["actions"] == ["s3:PutObject"] for p in s["principals"]}
    assert writers["Service"] == ["logdelivery.elasticloadbalancing.amazonaws.com"]
    assert writers["AWS"][0].startswith("arn:aws:iam::") and writers["AWS"][0].endswith(":root")
    assert planned["module.edge.aws_s3_bucket_server_side_encryption_configuration.access_logs"]["rule"][0][
        "apply_server_side_encryption_by_default"][0]["sse_algorithm"] == "AES256"  # the only one ALB logs support


ADDONS = {"vpc-cni", "kube-proxy", "eks-pod-identity-agent", "coredns", "aws-ebs-csi-driver", "metrics-server"}


def _addons(planned: dict) -> dict[str, dict]:
    return {values["addon_name"]: values for address, values in planned.items()
            if address.startswith("module.cluster.aws_eks_addon.")}


def test_the_cluster_runs_pinned_managed_add_ons_with_network_policies_enforced(plan):
    """Unmanaged, unversioned core add-ons drift with each EKS platform version; without metrics-server the runbook's
    `kubectl top` fails; without the VPC CNI's policy agent the NetworkPolicies are accepted and never enforced."""
    _, planned = plan
    addons = _addons(planned)
    assert set(addons) == ADDONS
    for name, addon in addons.items():
        assert re.fullmatch(r"v\d+\.\d+\.\d+-eksbuild\.\d+", addon["addon_version"]), (name, addon["addon_version"])
        # Terraform is the add-ons' truth: a hand-edited setting is overwritten, on creation and on update alike.
        assert {addon["resolve_conflicts_on_create"], addon["resolve_conflicts_on_update"]} == {"OVERWRITE"}
    assert json.loads(addons["vpc-cni"]["configuration_values"])["enableNetworkPolicy"] == "true"
    # The pods' network, Service routing and Pod Identity exist before the first node joins; the rest after.
    node_group = _configured(planned.shown, ("cluster",), "aws_eks_node_group.default")
    assert "aws_eks_addon.before_nodes" in node_group["depends_on"]
    before = {v["addon_name"] for a, v in planned.items() if a.startswith("module.cluster.aws_eks_addon.before_nodes")}
    assert before == {"vpc-cni", "kube-proxy", "eks-pod-identity-agent"}


def test_volumes_are_provisioned_by_the_ebs_csi_driver_through_pod_identity_and_encrypted(plan):
    """The Prometheus and VictoriaLogs charts claim volumes: with no CSI driver and no default StorageClass they stay
    Pending and the installs time out."""
    _, planned = plan
    csi = _addons(planned)["aws-ebs-csi-driver"]
    assert json.loads(csi["configuration_values"]) == {"defaultStorageClass": {"enabled": True}}
    (association,) = csi["pod_identity_association"]
    assert association["service_account"] == "ebs-csi-controller-sa"
    csi_role = planned["module.cluster.module.ebs_csi_role.aws_iam_role.this"]
    trust = json.loads(csi_role["assume_role_policy"])["Statement"]
    assert {"Service": "pods.eks.amazonaws.com"} in [s["Principal"] for s in trust]
    assert {"sts:AssumeRole", "sts:TagSession"} <= {a for s in trust for a in _listed(s["Action"])}
    attached = {v["policy_arn"] for a, v in planned.items()
                if a.startswith("module.cluster.module.ebs_csi_role.aws_iam_role_policy_attachment.this")}
    assert attached == {"arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"}
    # The default StorageClass has no key of its own: every new volume is encrypted by the account's default.
    assert planned["aws_ebs_encryption_by_default.this"]["enabled"] is True
    # Both charts that claim volumes leave the class to the default one.
    for path in ("roles/monitoring/files/kube-prometheus-stack.yml", "roles/logging/tasks/kubernetes.yml"):
        assert "storageClassName" not in (REPO / path).read_text(), f"{path} names a StorageClass the cluster lacks"


def test_the_node_count_is_terraforms_as_the_runbook_says(plan):
    """No node autoscaler (docs/infrastructure.md): node_desired_size is applied, not ignored, so the runbook's
    `raise node_desired_size` changes the group."""
    environment, planned = plan
    scaling = planned["module.cluster.aws_eks_node_group.default"]["scaling_config"][0]
    tfvars = _tfvars(environment)
    assert (scaling["min_size"], scaling["desired_size"], scaling["max_size"]) == (
        int(tfvars["node_min_size"]), int(tfvars["node_desired_size"]), int(tfvars["node_max_size"]))
    # `terraform show -json` has no lifecycle: read the node group's ignore_changes from its configuration file.
    cluster = (REPO / "terraform" / "modules" / "cluster" / "main.tf").read_text()
    node_group = cluster[cluster.index('resource "aws_eks_node_group" "default"'):]
    (ignored,) = [line for line in node_group[:node_group.index("\n}\n")].splitlines() if "ignore_changes" in line]
    assert "desired_size" not in ignored, ignored
    assert "node_desired_size" in (REPO / "docs" / "runbook.md").read_text()


def _inventory(environment: str) -> dict:
    return yaml.safe_load((REPO / "inventories" / environment / "group_vars" / "all" / "main.yml").read_text())


def test_one_image_one_digest_the_release_pushes_to_staging_and_ecr_copies_it_to_prod(plan):
    """Each environment had its own ECR repository while release.yml pushes to one registry: prod's stayed empty.
    Now staging's registry replicates every push to prod's account (the same digest), prod's accepts the copies from
    staging's account only, and only staging has a release role - prod runs only what staging was given."""
    environment, planned = plan
    staging, prod = _inventory("staging"), _inventory("prod")
    replication = [v for a, v in planned.items() if a.startswith("module.registry.aws_ecr_replication_configuration")]
    policy = [a for a in planned if a.startswith("module.registry.aws_ecr_registry_policy")]
    if environment == "staging":
        (configuration,) = replication
        (rule,) = configuration["replication_configuration"][0]["rule"]
        assert rule["destination"] == [
            {"registry_id": prod["colors_aws_account_id"], "region": prod["colors_aws_region"]}]
        assert rule["repository_filter"] == [{"filter": "colors", "filter_type": "PREFIX_MATCH"}]
        assert not policy
    else:
        assert not replication
        (statement,) = planned["module.registry.data.aws_iam_policy_document.replication[0]"]["statement"]
        assert statement["actions"] == ["ecr:CreateRepository", "ecr:ReplicateImage"]
        assert statement["principals"] == [
            {"type": "AWS", "identifiers": [f"arn:aws:iam::{staging['colors_aws_account_id']}:root"]}]
        assert [r.rsplit(":", 1)[1] for r in statement["resources"]] == ["repository/colors"]
        assert policy == ["module.registry.aws_ecr_registry_policy.this[0]"]
    # Both inventories pull the same repository name from their own account's registry.
    assert staging["app_release_image_repository"] == prod["app_release_image_repository"]


def test_the_key_of_the_final_snapshot_outlives_the_stack(plan):
    """The database leaves a final snapshot encrypted with the data key, and `terraform destroy` deleted that key
    with the stack: the snapshot could never be restored. Where a final snapshot is taken, the key is the retained
    one (prevent_destroy; test_terraform_cli shows a destroy stopping at it)."""
    _, planned = plan
    database = planned["module.data.aws_db_instance.this"]
    assert database["skip_final_snapshot"] is False and database["deletion_protection"] is True
    references = _references(planned.shown, ("data",), "aws_db_instance.this", "kms_key_id")
    assert _source(planned.shown, ("data",), references[0]).startswith("module.secrets.module.key.aws_kms_key.")
    keys = [a for a in planned if a.startswith("module.secrets.module.key.aws_kms_key.")]
    assert keys == ["module.secrets.module.key.aws_kms_key.retained[0]"], keys


def test_the_load_balancer_reaches_the_pods_and_only_the_controller_registers_them(plan):
    """Nothing registered the pods in the ALB's ip target group and no rule admitted the ALB into the pods' security
    group: every request would have got a 503. The pods' group is their own (security groups for pods, as the
    database admits them); the controller's role (Pod Identity) may register and deregister targets in that one
    target group only."""
    _, planned = plan
    shown = planned.shown
    into_pods = _configured(shown, ("edge",), "aws_vpc_security_group_ingress_rule.pods_from_alb")["expressions"]
    out_of_alb = _configured(shown, ("edge",), "aws_vpc_security_group_egress_rule.alb_to_pods")["expressions"]
    pods_group = "module.app_pods.aws_security_group.app_pods"
    assert _source(shown, ("edge",), into_pods["security_group_id"]["references"][0]) == pods_group
    assert _source(shown, ("edge",), into_pods["referenced_security_group_id"]["references"][0]) == (
        "module.edge.aws_security_group.alb")
    assert _source(shown, ("edge",), out_of_alb["referenced_security_group_id"]["references"][0]) == pods_group
    app_port = int(_tfvars(plan[0])["app_port"])
    for address in ("module.edge.aws_vpc_security_group_ingress_rule.pods_from_alb",
                    "module.edge.aws_vpc_security_group_egress_rule.alb_to_pods"):
        rule = planned[address]
        assert (rule["from_port"], rule["to_port"], rule["ip_protocol"], rule["cidr_ipv4"]) == (
            app_port, app_port, "tcp", None), address
    assert planned["module.edge.aws_lb_target_group.app"]["target_type"] == "ip"

    association = planned["module.load_balancer_controller.aws_eks_pod_identity_association.this[0]"]
    assert (association["namespace"], association["service_account"]) == ("kube-system", "aws-load-balancer-controller")
    policy = planned["module.load_balancer_controller.data.aws_iam_policy_document.this"]["statement"]
    writes = [s for s in policy if any(not a.split(":")[1].startswith("Describe") for a in s["actions"])]
    (write,) = writes
    assert sorted(write["actions"]) == [
        "elasticloadbalancing:DeregisterTargets", "elasticloadbalancing:RegisterTargets"]
    configured = _configured(shown, ("load_balancer_controller",), "data.aws_iam_policy_document.this")
    (target_group,) = {_source(shown, ("load_balancer_controller",), r)
                       for s in configured["expressions"]["statement"] if "resources" in s
                       for r in s["resources"].get("references", [])[:1]}
    assert target_group == "module.edge.aws_lb_target_group.app"


def test_the_database_admits_the_colors_pods_and_the_runners_by_security_group_not_every_pod(plan):
    """Every pod of the cluster has an address in the private subnets: a database admitting those subnets admits a pod
    of any namespace. It admits two security groups - the Colors pods' own (security groups for pods: the VPC CNI's
    pod ENIs, which the cluster's role lets the VPC resource controller manage) and the runners' that rotate the
    login - and no CIDR; the group's name is the one cluster_bootstrap looks up to give it to the pods."""
    environment, planned = plan
    shown = planned.shown
    rules = sorted(a for a in planned if a.startswith("module.data.aws_vpc_security_group_ingress_rule."))
    assert rules == ["module.data.aws_vpc_security_group_ingress_rule.from_app_pods",
                     "module.data.aws_vpc_security_group_ingress_rule.from_deploy_runners"], rules
    assert {planned[a]["cidr_ipv4"] for a in rules} == {None}
    peers = {_source(shown, ("data",), _references(shown, ("data",), a.removeprefix("module.data."),
                                                   "referenced_security_group_id")[0]) for a in rules}
    assert peers == {"module.app_pods.aws_security_group.app_pods", "module.deploy_runners.aws_security_group.runners"}
    config = json.loads(_addons(planned)["vpc-cni"]["configuration_values"])
    assert config["env"] == {"ENABLE_POD_ENI": "true", "POD_SECURITY_GROUP_ENFORCING_MODE": "standard"}
    assert config["init"]["env"] == {"DISABLE_TCP_EARLY_DEMUX": "true"}  # the kubelet's probes reach such pods
    attached = {v["policy_arn"] for a, v in planned.items()
                if a.startswith("module.cluster.module.cluster_role.aws_iam_role_policy_attachment.this")}
    assert "arn:aws:iam::aws:policy/AmazonEKSVPCResourceController" in attached
    inventory = inventory_variables(REPO / "inventories" / environment)
    assert planned["module.app_pods.aws_security_group.app_pods"]["name"] == (
        inventory["cluster_bootstrap_pod_security_group"].replace("{{ colors_environment }}", environment))


def _traffic_path() -> dict[str, dict[str, str]]:
    """The rows of docs/network-topology.md's "traffic path, rule by rule" table, by rule address."""
    doc = (REPO / "docs" / "network-topology.md").read_text()
    section = doc.split("## The traffic path, rule by rule", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("| ")]
    header, *rows = rows
    return {row[1].strip("`"): dict(zip(header, row, strict=True)) for row in rows}


def test_the_topology_documents_every_security_group_rule_on_its_hop_of_the_traffic_path(plan):
    """client → WAF/ALB → pods, pods → RDS, deploy runner → API endpoint: each rule of the plan, with the group it
    belongs to, the group (or the CIDRs) it admits and its ports, is its row of docs/network-topology.md."""
    environment, planned = plan
    shown, tfvars = planned.shown, _tfvars(environment)
    private = {v["cidr_block"] for a, v in planned.items() if a.startswith("module.network.aws_subnet.private[")}
    cidrs_named = {"0.0.0.0/0": {"0.0.0.0/0"}, "the private subnets": private,
                   "the VPC CIDR, `api_allowed_cidrs`": {tfvars["vpc_cidr"], *json.loads(tfvars["api_allowed_cidrs"])}}
    documented, found = _traffic_path(), set()
    for kind, direction in (("aws_vpc_security_group_ingress_rule", "ingress"),
                            ("aws_vpc_security_group_egress_rule", "egress")):
        for path, resource in _resources(shown, kind):
            address = ".".join([*(f"module.{p}" for p in path), resource["address"]])
            assert address in documented, f"{address} is on no hop of docs/network-topology.md's traffic path"
            row, expressions = documented[address], resource["expressions"]
            found.add(address)
            assert row["direction"] == direction, address
            group = _source(shown, path, expressions["security_group_id"]["references"][0])
            assert f"`{group}`" == row["group"], address
            instances = [v for a, v in planned.items() if a == address or a.startswith(f"{address}[")]
            assert instances, f"{address} is not planned in {environment}"
            if "referenced_security_group_id" in expressions:
                peer = _source(shown, path, expressions["referenced_security_group_id"]["references"][0])
                assert f"`{peer}`" == row["peer"], address
            else:
                assert {i["cidr_ipv4"] for i in instances} == cidrs_named[row["peer"]], address
            assert all(i["from_port"] == i["to_port"] for i in instances), address
            ports = sorted({i["from_port"] for i in instances})
            protocols = sorted({i["ip_protocol"] for i in instances})
            written = ", ".join(map(str, ports)) + ("" if protocols == ["tcp"] else f" ({', '.join(protocols)})")
            assert written == row["ports"], (address, written)
    assert found == set(documented), f"rows without a rule in the plan: {sorted(set(documented) - found)}"
