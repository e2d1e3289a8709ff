"""The moto server of the local platform, with the emulator gaps that Terraform and the pipelines trip over closed.

Each patch names the AWS behaviour it restores. Nothing here changes what a request does; it only makes moto
answer like AWS: a no-change `terraform plan` against the local platform really reports no change, and with IAM
enforced (POST /moto-api/reset-auth, or for some accounts only: POST /moto-api/enforce-iam) a job can still assume
its role with its OIDC token.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from typing import Any
from urllib.parse import urlparse

import moto_eks
from moto.core.authorization import ActionAuthenticatorMixin
from moto.ec2.models import ec2_backends
from moto.ec2.models.security_groups import SecurityGroupRule
from moto.eks import models as eks_models
from moto.iam.access_control import IAMPolicyStatement, IAMRequestBase, PermissionResult
from moto.iam.policy_conditions import CONDITION_OPERATIONS
from moto.moto_api._internal import urls as moto_api_urls
from moto.rds import models as rds_models
from moto.server import main

_update_parameters = rds_models.DBParameterGroup.update_parameters


def _update_parameters_as_user(self: Any, new_parameters: Any) -> None:
    """AWS marks parameters set through ModifyDBParameterGroup with Source=user; moto leaves Source out, so the
    AWS provider (which reads back only user parameters) saw none and planned to add them on every run."""
    new_parameters = list(new_parameters)
    _update_parameters(self, new_parameters)
    for parameter in new_parameters:
        self.parameters[parameter["ParameterName"]].setdefault("Source", "user")


rds_models.DBParameterGroup.update_parameters = _update_parameters_as_user


def _rule_description(self: Any) -> str | None:
    """AWS returns the description of a rule that references another security group; moto read it only from a
    CIDR range, so the AWS provider saw it empty and planned to update every such rule on every run."""
    return self.ip_range.get("Description") or self.source_group.get("Description")


SecurityGroupRule.description = property(_rule_description)

_check_principal = IAMPolicyStatement._check_principal


def _check_principal_with_role_sessions(self: Any, principal: str) -> bool:
    """A trust policy that names a role as AWS principal admits that role's sessions (AWS matches the session
    arn:aws:sts::<account>:assumed-role/<name>/<session> to the role); moto compared the session's ARN with the
    role's literally, so one role could never assume another (AWX's execution role → the deploy role)."""
    if _check_principal(self, principal):
        return True
    session = re.fullmatch(r"arn:([^:]+):sts::(\d+):assumed-role/([^/]+)/[^/]+", principal)
    expected = (self._statement.get("Principal") or {}).get("AWS") or []
    expected = [expected] if isinstance(expected, str) else expected
    return bool(session) and any(
        re.fullmatch(rf"arn:{session[1]}:iam::{session[2]}:role/(?:[^/]+/)*{re.escape(session[3])}", arn)
        for arn in expected)


IAMPolicyStatement._check_principal = _check_principal_with_role_sessions

_is_action_permitted = IAMPolicyStatement.is_action_permitted


def _bool_operation(expected: list[str] | str, actual: str) -> bool:
    wanted = expected if isinstance(expected, list) else [expected]
    return str(actual).lower() in [str(value).lower() for value in wanted]


# moto treated a condition operator it does not know as met; Bool is one (aws:SecureTransport, aws:MultiFactorAuth...).
CONDITION_OPERATIONS["Bool"] = _bool_operation


def _as_aws_evaluates_it(self: Any, action: str, resource: str = "*", principal: str | None = None,
                         incoming_condition_values: dict[str, str] | None = None) -> Any:
    """A statement is evaluated with the request's context as AWS has it - aws:SecureTransport is true: the SDKs
    call AWS over TLS (the local AWS API, on loopback, stands in for that endpoint) - and a statement whose
    Condition does not hold does not apply (neither allows nor denies). moto denied the action outright, so the
    state bucket's "DenyPlainHttp" (Deny when aws:SecureTransport is false) refused every request with IAM
    enforced, and an Allow with an unmet condition denied what another statement allowed. A statement scoped to
    resources matched no request whose resource moto does not name (every service but S3): Terraform's
    least-privilege policies allowed nothing."""
    values = {"aws:SecureTransport": "true", **(incoming_condition_values or {})}
    statement = self
    if resource == "*" and self._statement.get("Resource") not in (None, "*", ["*"]):
        # moto names the resource of S3 requests only ("*" for every other service): a statement scoped to
        # resources (Terraform's policies are) is judged by its actions, as moto judges every other statement.
        statement = IAMPolicyStatement({**self._statement, "Resource": "*"})
    result = _is_action_permitted(statement, action, resource, principal, values)
    if result is PermissionResult.DENIED and self._statement.get("Condition") and not self._check_conditions(values):
        return PermissionResult.NEUTRAL
    return result


IAMPolicyStatement.is_action_permitted = _as_aws_evaluates_it

_create_aws_request = IAMRequestBase._create_aws_request


def _signed_with_the_payload_sent(self: Any) -> Any:
    """With IAM enforced, moto recomputed the signature of a REST API's GET or DELETE without a body (e.g. EKS
    DescribeCluster) over the request's parsed parameters instead of the empty payload, so every such call failed
    with SignatureDoesNotMatch; the signature covers the bytes sent (a query API's POST: its form, as before)."""
    if self._method in ("GET", "HEAD", "DELETE") and self._body == b"" and not isinstance(self._data, (bytes, str)):
        saved, self._data = self._data, b""
        try:
            return _create_aws_request(self)
        finally:
            self._data = saved
    return _create_aws_request(self)


IAMRequestBase._create_aws_request = _signed_with_the_payload_sent

# STS calls that AWS answers unsigned: the caller has no credentials yet, the token or assertion is the proof.
UNSIGNED_STS_ACTIONS = {"AssumeRoleWithWebIdentity", "AssumeRoleWithSAML"}
_authenticate = ActionAuthenticatorMixin._authenticate_and_authorize_action
# Accounts whose every request is authenticated and authorized, whatever reset-auth says for the others
# (POST /moto-api/enforce-iam): the staging rehearsal enforces IAM in staging's account while the tests of the local
# environment's account go on in another lane - AWS accounts are isolated the same way.
ENFORCED_ACCOUNTS: set[str] = set()


def _authenticate_unless_unsigned_sts(self: Any, iam_request_cls: type, resource: str = "*") -> None:
    """With IAM enforced, moto checked the signature of AssumeRoleWithWebIdentity too, and answered an unsigned one
    (as botocore and GitHub's configure-aws-credentials send it) with a 500; AWS needs no signature there."""
    if getattr(self, "service_name", None) == "sts" and self._get_action() in UNSIGNED_STS_ACTIONS:
        return
    if getattr(self, "current_account", None) in ENFORCED_ACCOUNTS:
        _check_signature_and_policies(self, iam_request_cls, resource)
        return
    _authenticate(self, iam_request_cls, resource)


def _check_signature_and_policies(self: Any, iam_request_cls: type, resource: str) -> None:
    """What moto's check does once reset-auth's count is reached (moto/core/authorization.py), for one request:
    moto's switch is one count for the whole server, which another thread's request would see changed."""
    if self.headers.get("X-Amz-Target") in ActionAuthenticatorMixin.PUBLIC_OPERATIONS:
        return
    parsed = urlparse(self.uri)
    path = self.raw_path + (f"?{parsed.query}" if parsed.query else "")
    request = iam_request_cls(account_id=self.current_account, method=self.method, path=path, data=self.data,
                              body=self.raw_body, headers=self.headers, action=self._get_action())
    request.check_signature()
    request.check_action_permitted(resource)


def enforce_iam(request: Any, full_url: str, headers: Any) -> tuple[int, dict, str]:
    """POST /moto-api/enforce-iam {"accounts": [...]}: the accounts whose requests are checked from now on (an empty
    list: none but what reset-auth says); answers with the accounts enforced before."""
    accounts = json.loads(request.data or b"{}").get("accounts", [])
    if not isinstance(accounts, list) or not all(isinstance(a, str) and re.fullmatch(r"\d{12}", a) for a in accounts):
        return 400, {"Content-Type": "application/json"}, json.dumps(
            {"error": f"accounts must be a list of 12-digit account IDs, got {accounts!r}"})
    before = sorted(ENFORCED_ACCOUNTS)
    ENFORCED_ACCOUNTS.clear()
    ENFORCED_ACCOUNTS.update(accounts)
    return 200, {"Content-Type": "application/json"}, json.dumps({"previous": before, "accounts": sorted(accounts)})


ActionAuthenticatorMixin._authenticate_and_authorize_action = _authenticate_unless_unsigned_sts
moto_api_urls.url_paths["{0}/moto-api/enforce-iam"] = enforce_iam

# Access entries, the authentication mode, where a cluster's API answers, the token's STS request and EKS's
# authenticator (moto_eks.py); the cluster patches below wrap these.
moto_eks.install()

_create_cluster = eks_models.EKSBackend.create_cluster
_delete_cluster = eks_models.EKSBackend.delete_cluster


def _create_cluster_with_its_security_group(self: Any, name: str, role_arn: str, resources_vpc_config: dict,
                                            *args: Any, **kwargs: Any) -> Any:
    """EKS creates a security group for every cluster (eks-cluster-sg-<name>-<id>, in the cluster's VPC) that the
    managed nodes and their pods use, and names it in resourcesVpcConfig.clusterSecurityGroupId; moto made none, so
    the rule that admits the load balancer into the pods had no group to attach to."""
    cluster = _create_cluster(self, name, role_arn, resources_vpc_config, *args, **kwargs)
    if not resources_vpc_config.get("subnetIds"):
        return cluster  # EKS refuses a cluster without subnets; moto accepts it (tests that need only its endpoint)
    ec2 = ec2_backends[self.account_id][self.region_name]
    vpc_id = ec2.get_subnet(resources_vpc_config["subnetIds"][0]).vpc_id
    group = ec2.create_security_group(
        name=f"eks-cluster-sg-{name}-{hashlib.sha256(cluster.arn.encode()).hexdigest()[:10]}",
        description="EKS created security group applied to ENI that is attached to EKS Control Plane master nodes, "
                    "as well as any managed workloads.",
        vpc_id=vpc_id, tags={"aws:eks:cluster-name": name, f"kubernetes.io/cluster/{name}": "owned"})
    cluster.resources_vpc_config["clusterSecurityGroupId"] = group.id
    return cluster


def _delete_cluster_and_its_security_group(self: Any, name: str) -> Any:
    """EKS deletes the cluster's security group with the cluster (the VPC can then be deleted)."""
    cluster = _delete_cluster(self, name)
    group_id = cluster.resources_vpc_config.get("clusterSecurityGroupId")
    if group_id:
        ec2_backends[self.account_id][self.region_name].delete_security_group(group_id=group_id)
    return cluster


eks_models.EKSBackend.create_cluster = _create_cluster_with_its_security_group
eks_models.EKSBackend.delete_cluster = _delete_cluster_and_its_security_group

if __name__ == "__main__":
    sys.exit(main())
