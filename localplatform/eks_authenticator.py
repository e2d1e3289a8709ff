"""The EKS authenticator stand-in: how EKS turns a token into a Kubernetes identity (aws-iam-authenticator's token
verification, then the cluster's access entries). The local platform's moto serves it as the API server's webhook
token authenticator (moto_eks.py: POST /moto-api/eks/authenticate, a TokenReview): EKS's control plane is moto here.

A token (`aws eks get-token`: `k8s-aws-v1.<base64url of a presigned STS GetCallerIdentity URL>`) is checked for its
form (an STS host, GetCallerIdentity only, the cluster's name in the signed header x-k8s-aws-id), then STS verifies
it for one of the clusters this API server serves (the signature and expiry, with the key's secret) and names the
caller. The caller's role is looked up among that cluster's access entries: the entry's user name (its
{{SessionName}} filled in) and Kubernetes groups are the identity; an entry with AmazonEKSClusterAdminPolicy also
gets system:masters (what that policy grants; EKS's own authorizer enforces it). A caller without an entry is not
authenticated, as in EKS. Every refusal says why (the API server logs it).
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Callable

TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 - the token format's prefix, not a secret
STS_HOST = re.compile(r"sts(\.[a-z0-9-]+)?\.amazonaws\.com(\.cn)?")
# The query parameters a get-token URL carries (aws-iam-authenticator refuses any other).
ALLOWED_PARAMS = {"Action", "Version", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
                  "X-Amz-SignedHeaders", "X-Amz-Security-Token", "X-Amz-Signature"}
CLUSTER_HEADER = "x-k8s-aws-id"
ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
ASSUMED_ROLE = re.compile(r"arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/(.+)")


class Refused(Exception):
    """The token authenticates no one; the message says why."""


def token_request(token: str) -> tuple[str, str]:
    """(host, query as sent) of the presigned request a well-formed token carries, or Refused."""
    if not token.startswith(TOKEN_PREFIX):
        raise Refused("not an EKS token (k8s-aws-v1.)")
    payload = token[len(TOKEN_PREFIX):]
    try:
        url = urllib.parse.urlsplit(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode())
    except ValueError as exc:
        raise Refused(f"the token does not decode: {exc}") from exc
    if url.scheme != "https" or not STS_HOST.fullmatch(url.hostname or ""):
        raise Refused(f"the token's URL is not an STS endpoint: {url.scheme}://{url.netloc}")
    if url.path not in ("", "/"):
        raise Refused(f"unexpected path {url.path!r}")
    pairs = urllib.parse.parse_qsl(url.query, keep_blank_values=True)
    query = dict(pairs)
    unknown = sorted({k for k, _ in pairs} - ALLOWED_PARAMS)
    if unknown or len(query) != len(pairs):
        raise Refused(f"unexpected query parameters: {', '.join(unknown) or 'repeated'}")
    if query.get("Action") != "GetCallerIdentity":
        raise Refused(f"the token's action is {query.get('Action')!r}, not GetCallerIdentity")
    if CLUSTER_HEADER not in query.get("X-Amz-SignedHeaders", "").split(";"):
        raise Refused(f"the cluster's name ({CLUSTER_HEADER}) is not signed")
    return url.netloc, url.query


def identity(arn: str, entry: dict | None, policies: list[str], cluster: str) -> dict:
    """The Kubernetes user of an assumed role's session (`arn`), from its role's access entry on `cluster`."""
    found = ASSUMED_ROLE.fullmatch(arn)
    if not found:
        raise Refused(f"{arn} is not an assumed role's session (only roles are mapped here)")
    partition, account, role, session = found.groups()
    role_arn = f"arn:{partition}:iam::{account}:role/{role}"
    if entry is None:
        raise Refused(f"{role_arn} has no access entry on cluster {cluster}")
    groups = list(entry.get("kubernetesGroups") or [])
    if ADMIN_POLICY in policies:
        groups.append("system:masters")
    return {"username": (entry.get("username") or arn).replace("{{SessionName}}", session),
            "uid": f"aws-iam-authenticator:{account}:{role}", "groups": groups,
            "extra": {"arn": [arn], "canonicalArn": [role_arn], "sessionName": [session]}}


def review(token: str, clusters: list[str], verify: Callable[[str, str, str], str],
           access_entry: Callable[[str, str], tuple[dict | None, list[str]]]) -> dict:
    """The status of a TokenReview of `token` on an API server that serves `clusters`.

    verify(host, query as sent, cluster) -> the caller's ARN, if STS verifies the request signed for that cluster
    (else it raises Refused); access_entry(cluster, role ARN) -> (the entry or None, its access policy ARNs)."""
    try:
        host, query = token_request(token)
        last = "this API server serves no cluster"
        for cluster in clusters:  # the token names its cluster only in the signed header: try each served one
            try:
                arn = verify(host, query, cluster)
            except Refused as exc:
                last = str(exc)
                continue
            role = ASSUMED_ROLE.fullmatch(arn)
            entry, policies = access_entry(cluster, f"arn:{role[1]}:iam::{role[2]}:role/{role[3]}") if role else (
                None, [])
            return {"authenticated": True, "user": identity(arn, entry, policies, cluster)}
        raise Refused(f"STS did not verify the token for any cluster this API server serves: {last}")
    except Refused as exc:
        return {"authenticated": False, "error": str(exc)}
