#!/usr/bin/python
"""Ansible module colors_eks_kubeconfig: write the kubeconfig entry that reaches an EKS cluster."""

from __future__ import annotations

DOCUMENTATION = r"""
module: colors_eks_kubeconfig
short_description: Write or update the kubeconfig entry (cluster, user, context) of an EKS cluster
description:
  - Reads the cluster's API endpoint and certificate authority with the EKS API (DescribeCluster) and merges one
    cluster, one user and one context, all named O(context), into the kubeconfig at O(path). Other entries of the
    file are kept; the current context is set only when the file had none.
  - The user authenticates with short-lived tokens from C(aws eks get-token) (an exec credential plugin), so the
    file holds no secret. It is written with mode 0600.
  - Reports changed only when the merged file differs from the one on disk. Supports check mode and diff.
  - The pipelines (deploy.yml, rollback.yml, rotate-secrets.yml workflows, AWX) run it before any other play,
    in place of C(aws eks update-kubeconfig).
options:
  cluster_name:
    description: Name of the EKS cluster (C(colors-<environment>) in this project).
    type: str
    required: true
  path:
    description: Kubeconfig file to create or update.
    type: path
    required: true
  context:
    description: Name of the context, cluster and user entries (the inventory's C(colors_kube_context)).
    type: str
    required: true
  role_arn:
    description: IAM role that C(aws eks get-token) assumes for the token (empty - the caller's identity).
    type: str
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
  - ansible.builtin.action_common_attributes
  - colors.deploy.common
attributes:
  check_mode:
    support: full
    details: Reports whether the kubeconfig would change and writes nothing.
  diff_mode:
    support: full
    details: The kubeconfig before and after.
"""

EXAMPLES = r"""
- name: Write the kubeconfig of the production cluster
  colors.deploy.colors_eks_kubeconfig:
    cluster_name: colors-prod
    region: eu-west-1
    path: ~/.kube/config
    context: colors-prod
"""

RETURN = r"""
endpoint:
  description: API server endpoint of the cluster.
  returned: success
  type: str
  sample: https://ABCDEF0123456789.gr7.eu-west-1.eks.amazonaws.com
context:
  description: Name of the context written.
  returned: success
  type: str
path:
  description: Kubeconfig file written.
  returned: success
  type: str
"""

import copy  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402

import yaml  # noqa: E402

try:
    from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
    from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
except ImportError:  # pragma: no cover - the collection ships with the ansible package
    AnsibleAWSModule = None

try:
    import botocore
except ImportError:  # pragma: no cover - AnsibleAWSModule reports the missing library
    botocore = None


def argument_spec() -> dict:
    return dict(
        cluster_name=dict(type="str", required=True),
        path=dict(type="path", required=True),
        context=dict(type="str", required=True),
        role_arn=dict(type="str"),
    )


def _upsert(entries: list, name: str, key: str, value: dict) -> list:
    entries = [e for e in entries or [] if e.get("name") != name]
    return [*entries, {"name": name, key: value}]


def merge_kubeconfig(existing: dict | None, *, context: str, cluster_name: str, region: str, endpoint: str,
                     ca_data: str, role_arn: str | None = None) -> dict:
    """The kubeconfig ``existing`` with one cluster, user and context named ``context`` added or replaced."""
    config = copy.deepcopy(existing) if existing else {}
    config.setdefault("apiVersion", "v1")
    config.setdefault("kind", "Config")
    config.setdefault("preferences", {})
    args = ["--region", region, "eks", "get-token", "--cluster-name", cluster_name, "--output", "json"]
    if role_arn:
        args += ["--role-arn", role_arn]
    config["clusters"] = _upsert(config.get("clusters"), context, "cluster",
                                 {"server": endpoint, "certificate-authority-data": ca_data})
    config["users"] = _upsert(config.get("users"), context, "user", {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws", "args": args,
        "interactiveMode": "Never"}})
    config["contexts"] = _upsert(config.get("contexts"), context, "context", {"cluster": context, "user": context})
    if not config.get("current-context"):
        config["current-context"] = context
    return config


def _write(path: str, config: dict) -> None:
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".kubeconfig-")
    try:
        with os.fdopen(fd, "w") as handle:
            yaml.safe_dump(config, handle, default_flow_style=False, sort_keys=False)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main() -> None:
    module = AnsibleAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    client = module.client("eks")
    try:
        cluster = client.describe_cluster(name=params["cluster_name"])["cluster"]
    except is_boto3_error_code("ResourceNotFoundException"):
        module.fail_json(msg=f"EKS cluster {params['cluster_name']} does not exist in {params['region']}: apply "
                             "the environment's infrastructure first (infrastructure.yml), or check the region")
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:  # pylint: disable=duplicate-except
        module.fail_json_aws(exc, msg=f"Could not describe EKS cluster {params['cluster_name']}")
    endpoint = cluster.get("endpoint")
    ca_data = (cluster.get("certificateAuthority") or {}).get("data")
    if not endpoint or not ca_data:
        module.fail_json(msg=f"EKS cluster {params['cluster_name']} has no endpoint or certificate authority yet "
                             f"(status {cluster.get('status')}): wait until it is ACTIVE")
    path = params["path"]
    existing = None
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            try:
                existing = yaml.safe_load(handle) or {}
            except yaml.YAMLError as exc:
                module.fail_json(msg=f"{path} is not a readable kubeconfig ({exc}); nothing was changed")
    merged = merge_kubeconfig(existing, context=params["context"], cluster_name=params["cluster_name"],
                              region=params["region"], endpoint=endpoint, ca_data=ca_data,
                              role_arn=params.get("role_arn"))
    changed = merged != existing
    if changed and not module.check_mode:
        _write(path, merged)
    module.exit_json(changed=changed, endpoint=endpoint, context=params["context"], path=path,
                     diff={"before": yaml.safe_dump(existing or {}), "after": yaml.safe_dump(merged)})


if __name__ == "__main__":
    main()
