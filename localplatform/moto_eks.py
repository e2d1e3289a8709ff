"""What moto's EKS lacks for an access path like production's, added to the local platform's moto server.

- The cluster's authentication mode (accessConfig): moto dropped it, so Terraform planned to replace every cluster
  that sets one. Kept and described as EKS describes it.
- Access entries and their access policies (authentication mode API): Create/Describe/Update/Delete/ListAccessEntries,
  Associate/Disassociate/ListAssociatedAccessPolicies, as Terraform's aws_eks_access_entry and
  aws_eks_access_policy_association call them. They grant nothing by themselves: the EKS authenticator stand-in
  (eks_authenticator.py) reads them to map an IAM principal to its Kubernetes user and groups, as EKS does.
- Where the cluster's API answers: a cluster named in the endpoints file (COLORS_EKS_ENDPOINTS, JSON
  {name: {"endpoint": url, "certificateAuthority": base64 PEM}}) is described with that endpoint and CA - the
  staging rehearsal points its cluster at the local platform's API server. Others keep moto's made-up endpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import utcnow
from moto.eks import models as eks_models
from moto.eks import urls as eks_urls
from moto.eks.exceptions import InvalidParameterException, ResourceInUseException, ResourceNotFoundException
from moto.eks.responses import EKSResponse

ENDPOINTS_ENV = "COLORS_EKS_ENDPOINTS"
# The account id and name of a role (any path) in an IAM role ARN.
ROLE_ARN = re.compile(r"arn:aws:iam::(\d{12}):role/(?:[^/]+/)*[^/]+")
USER_ARN = re.compile(r"arn:aws:iam::\d{12}:user/.+")
POLICY_ARN = re.compile(r"arn:aws:eks::aws:cluster-access-policy/[A-Za-z]+")


def _not_found(message: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(clusterName=None, nodegroupName=None, fargateProfileName=None, addonName=None,
                                     message=message)


def endpoints() -> dict[str, dict[str, str]]:
    path = os.environ.get(ENDPOINTS_ENV)
    if not path or not Path(path).is_file():
        return {}
    return json.loads(Path(path).read_text())


# --- the cluster: its authentication mode and where its API answers ---------------------------------------------

_create_cluster = eks_models.EKSBackend.create_cluster
_describe_cluster = eks_models.EKSBackend.describe_cluster


def _create_cluster_keeping_access_config(self: Any, *args: Any, access_config: dict | None = None,
                                          **kwargs: Any) -> Any:
    cluster = _create_cluster(self, *args, **kwargs)
    config = access_config or {}
    cluster.access_config = {"authenticationMode": config.get("authenticationMode", "CONFIG_MAP"),
                             "bootstrapClusterCreatorAdminPermissions":
                                 config.get("bootstrapClusterCreatorAdminPermissions", True)}
    cluster.access_entries = {}
    return cluster


def _describe_cluster_where_it_answers(self: Any, name: str) -> Any:
    cluster = _describe_cluster(self, name)
    swapped = endpoints().get(name)
    if swapped:
        cluster.endpoint = swapped["endpoint"]
        cluster.certificate_authority = {"data": swapped["certificateAuthority"]}
    return cluster


def _create_cluster_response(self: EKSResponse) -> ActionResult:
    name = self._get_param("name")
    cluster = self.eks_backend.create_cluster(
        name=name, version=self._get_param("version"), role_arn=self._get_param("roleArn"),
        resources_vpc_config=self._get_param("resourcesVpcConfig"),
        kubernetes_network_config=self._get_param("kubernetesNetworkConfig"), logging=self._get_param("logging"),
        client_request_token=self._get_param("clientRequestToken"), tags=self._get_param("tags"),
        encryption_config=self._get_param("encryptionConfig"),
        remote_network_config=self._get_param("remoteNetworkConfig"), access_config=self._get_param("accessConfig"))
    return ActionResult({"cluster": cluster})


# --- access entries ------------------------------------------------------------------------------------------------

def _cluster(backend: Any, name: str) -> Any:
    cluster = _describe_cluster(backend, name)
    if not hasattr(cluster, "access_entries"):  # created before this patch was loaded
        cluster.access_entries = {}
        cluster.access_config = {"authenticationMode": "CONFIG_MAP", "bootstrapClusterCreatorAdminPermissions": True}
    return cluster


def _entry(backend: Any, cluster_name: str, principal_arn: str) -> dict:
    cluster = _cluster(backend, cluster_name)
    entry = cluster.access_entries.get(principal_arn)
    if entry is None:
        raise _not_found(f"The specified principalArn could not be found: {principal_arn} (cluster {cluster_name})")
    return entry


def _public(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if k != "policies"}


class AccessEntries:
    """The EKS operations on access entries and their access policies, on moto's EKS backend."""

    @staticmethod
    def create_access_entry(self: EKSResponse) -> ActionResult:
        name, principal = self._get_param("name"), self._get_param("principalArn")
        cluster = _cluster(self.eks_backend, name)
        if cluster.access_config["authenticationMode"] not in ("API", "API_AND_CONFIG_MAP"):
            raise InvalidParameterException(
                clusterName=name, nodegroupName=None, fargateProfileName=None, addonName=None,
                message="The cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] to "
                        "perform this operation.")
        if not ROLE_ARN.fullmatch(principal or "") and not USER_ARN.fullmatch(principal or ""):
            raise InvalidParameterException(clusterName=name, nodegroupName=None, fargateProfileName=None,
                                            addonName=None, message=f"The principalArn {principal} is not valid.")
        if principal in cluster.access_entries:
            raise ResourceInUseException(clusterName=name, nodegroupName=None, addonName=None,
                                         message=f"The specified access entry resource is already in use on this "
                                                 f"cluster: {principal}")
        now = utcnow()
        account = principal.split(":")[4]
        role_name = principal.rsplit("/", 1)[-1]
        entry = {
            "clusterName": name, "principalArn": principal,
            "kubernetesGroups": sorted(self._get_param("kubernetesGroups") or []),
            "accessEntryArn": f"arn:aws:eks:{self.region}:{self.current_account}:access-entry/{name}/role/"
                              f"{account}/{role_name}/{hashlib.sha256(principal.encode()).hexdigest()[:12]}",
            "createdAt": now, "modifiedAt": now, "tags": self._get_param("tags") or {},
            # EKS's default user name of an IAM role's entry: its session, as STS names it.
            "username": self._get_param("username")
                        or f"arn:aws:sts::{account}:assumed-role/{role_name}/{{{{SessionName}}}}",
            "type": self._get_param("type") or "STANDARD", "policies": {},
        }
        cluster.access_entries[principal] = entry
        return ActionResult({"accessEntry": _public(entry)})

    @staticmethod
    def describe_access_entry(self: EKSResponse) -> ActionResult:
        entry = _entry(self.eks_backend, self._get_param("name"), unquote(self._get_param("principalArn")))
        return ActionResult({"accessEntry": _public(entry)})

    @staticmethod
    def update_access_entry(self: EKSResponse) -> ActionResult:
        entry = _entry(self.eks_backend, self._get_param("name"), unquote(self._get_param("principalArn")))
        if self._get_param("kubernetesGroups") is not None:
            entry["kubernetesGroups"] = sorted(self._get_param("kubernetesGroups"))
        if self._get_param("username"):
            entry["username"] = self._get_param("username")
        entry["modifiedAt"] = utcnow()
        return ActionResult({"accessEntry": _public(entry)})

    @staticmethod
    def delete_access_entry(self: EKSResponse) -> ActionResult:
        name, principal = self._get_param("name"), unquote(self._get_param("principalArn"))
        _entry(self.eks_backend, name, principal)
        del _cluster(self.eks_backend, name).access_entries[principal]
        return EmptyResult()

    @staticmethod
    def list_access_entries(self: EKSResponse) -> ActionResult:
        cluster = _cluster(self.eks_backend, self._get_param("name"))
        return ActionResult({"accessEntries": sorted(cluster.access_entries)})

    @staticmethod
    def associate_access_policy(self: EKSResponse) -> ActionResult:
        name, principal = self._get_param("name"), unquote(self._get_param("principalArn"))
        entry = _entry(self.eks_backend, name, principal)
        policy = self._get_param("policyArn")
        if not POLICY_ARN.fullmatch(policy or ""):
            raise InvalidParameterException(clusterName=name, nodegroupName=None, fargateProfileName=None,
                                            addonName=None, message=f"The policyArn {policy} is not valid.")
        now = utcnow()
        association = {"policyArn": policy, "accessScope": self._get_param("accessScope") or {"type": "cluster"},
                       "associatedAt": entry["policies"].get(policy, {}).get("associatedAt", now), "modifiedAt": now}
        entry["policies"][policy] = association
        return ActionResult({"clusterName": name, "principalArn": principal, "associatedAccessPolicy": association})

    @staticmethod
    def list_associated_access_policies(self: EKSResponse) -> ActionResult:
        name, principal = self._get_param("name"), unquote(self._get_param("principalArn"))
        entry = _entry(self.eks_backend, name, principal)
        return ActionResult({"clusterName": name, "principalArn": principal,
                             "associatedAccessPolicies": list(entry["policies"].values())})

    @staticmethod
    def disassociate_access_policy(self: EKSResponse) -> ActionResult:
        entry = _entry(self.eks_backend, self._get_param("name"), unquote(self._get_param("principalArn")))
        policy = unquote(self._get_param("policyArn"))
        if policy not in entry["policies"]:
            raise _not_found(f"The specified policy is not associated: {policy}")
        del entry["policies"][policy]
        return EmptyResult()


# --- the token: a presigned GetCallerIdentity, and EKS's authenticator --------------------------------------------
# An EKS token (`aws eks get-token`) is a presigned STS GetCallerIdentity URL (SigV4 in the query string, the
# cluster's name in the signed header x-k8s-aws-id); STS names the caller only if the signature is the key's. moto
# routed such a request as S3 (it read the service only from an Authorization header), took the caller from that
# header alone (so it answered "user/moto"), and checked no signature. Now it routes it by its credential scope,
# verifies the signature and expiry with the key's secret, and answers for that key. EKS's authenticator
# (eks_authenticator.py) runs here, where STS and the access entries are: POST /moto-api/eks/authenticate is the
# webhook token authenticator of an API server that serves the clusters of the endpoints file.

QUERY_CREDENTIAL = "X-Amz-Credential"
TOKEN_LIFETIME = 15 * 60  # seconds an EKS token is answered after it was signed (aws-iam-authenticator's window)
AUTH_PARAMS = {QUERY_CREDENTIAL, "X-Amz-Algorithm", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders",
               "X-Amz-Signature", "X-Amz-Security-Token"}


def _parse_query(query: str) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(query, keep_blank_values=True))


def _infer_presigned(original: Any) -> Any:
    def infer(self: Any, environ: dict[str, Any], path: str) -> str | None:
        credential = _parse_query(environ.get("QUERY_STRING", "")).get(QUERY_CREDENTIAL)
        if not environ.get("HTTP_AUTHORIZATION") and credential:
            environ = {**environ, "HTTP_AUTHORIZATION": f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=, "
                                                        "Signature="}
        return original(self, environ, path)
    return infer


def _access_key_from_query(original: Any) -> Any:
    def get_access_key(self: Any) -> str:
        credential = (self.querystring.get(QUERY_CREDENTIAL) or [""])[0]
        if "Authorization" not in self.headers and credential:
            return credential.split("/", 1)[0]
        return original(self)
    return get_access_key


def _secret_of(key: str) -> tuple[str, str | None, Any] | None:
    """(secret, session token or None, the STS backend of its account) of an access key moto issued."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    for account, per_partition in list(sts_backends.items()):
        for partition, backend in list(per_partition.items()):
            role = backend.get_assumed_role_from_access_key(key)
            if role:
                return role.secret_access_key, role.session_token, backend
            iam = iam_backends[account][partition]
            found = next((k for user in list(iam.users) for k in iam.list_access_keys(user) if k.access_key_id == key),
                         None)
            if found:
                return found.secret_access_key, None, backend
    return None


def presigned_caller(host: str, raw_query: str, headers: dict[str, str], now: float) -> str:
    """The ARN of the caller whose key signed this presigned GetCallerIdentity (GET https://<host>/?<raw_query>
    with `headers`), or SignatureError naming what does not hold: unknown key or session, expired, or a signature
    that is not this request's with the key's secret. The signature is recomputed over the query as sent (its
    encoding and its X-Amz-Date), as STS does."""
    import datetime

    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    query = _parse_query(raw_query)
    try:
        key, _, region, service, _ = query[QUERY_CREDENTIAL].split("/")
        signed = datetime.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
        expires = int(query["X-Amz-Expires"])
    except (KeyError, ValueError) as exc:
        raise SignatureError(f"not a SigV4 presigned request: {exc}") from exc
    known = _secret_of(key)
    if known is None or (known[1] is not None and query.get("X-Amz-Security-Token") != known[1]):
        raise SignatureError("the security token included in the request is invalid")
    secret, token, backend = known
    # STS answers an EKS token for 15 minutes after it was signed, whatever its X-Amz-Expires (get-token signs
    # with 60 s; the kubeconfig's exec plugin reuses the token for 14 minutes).
    valid = max(expires, TOKEN_LIFETIME)
    if not signed.timestamp() - 300 <= now <= signed.timestamp() + valid:
        raise SignatureError(f"the request expired (signed {query['X-Amz-Date']}, valid {valid} s)")
    unsigned = "&".join(pair for pair in raw_query.split("&") if not pair.startswith("X-Amz-Signature="))
    lowered = {k.lower(): v for k, v in headers.items()}
    request = AWSRequest(method="GET", url=f"https://{host}/?{unsigned}",
                         headers={n: lowered.get(n, "") for n in query.get("X-Amz-SignedHeaders", "").split(";")
                                  if n and n != "host"})
    request.context["timestamp"] = query["X-Amz-Date"]
    auth = SigV4QueryAuth(Credentials(key, secret, token), service, region, expires=expires)
    signature = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    if signature != query.get("X-Amz-Signature"):
        raise SignatureError("the signature does not match the request and the key's secret")
    return backend.get_caller_identity(key, region)[1]


class SignatureError(Exception):
    pass


def _get_caller_identity_verified(original: Any) -> Any:
    def get_caller_identity(self: Any) -> Any:
        import time
        from urllib.parse import urlsplit

        from moto.sts.exceptions import STSClientError

        raw_query = urlsplit(self.uri).query
        if "X-Amz-Signature=" in raw_query and "Authorization" not in self.headers:
            try:
                presigned_caller(self.headers.get("Host", ""), raw_query, dict(self.headers), time.time())
            except SignatureError as exc:
                raise STSClientError("SignatureDoesNotMatch", str(exc)) from exc
        return original(self)
    return get_caller_identity


def authenticate(request: Any, full_url: str, headers: Any) -> tuple[int, dict, str]:
    """The webhook token authenticator (TokenReview in, TokenReview with its status out) of the clusters the
    endpoints file serves at the local API server."""
    import time

    import eks_authenticator

    served = endpoints()

    def verify(host: str, raw_query: str, cluster: str) -> str:
        try:
            return presigned_caller(host, raw_query, {eks_authenticator.CLUSTER_HEADER: cluster}, time.time())
        except SignatureError as exc:
            raise eks_authenticator.Refused(str(exc)) from exc

    def access_entry(cluster: str, role_arn: str) -> tuple[dict | None, list[str]]:
        where = served[cluster]
        entries = getattr(eks_models.eks_backends[where["account"]][where["region"]].clusters.get(cluster),
                          "access_entries", {})
        entry = entries.get(role_arn)
        return (_public(entry), sorted(entry["policies"])) if entry else (None, [])

    review = json.loads(request.data or b"{}")
    status = eks_authenticator.review((review.get("spec") or {}).get("token", ""), sorted(served), verify,
                                      access_entry)
    body = {"apiVersion": review.get("apiVersion", "authentication.k8s.io/v1"), "kind": "TokenReview",
            "status": status}
    return 200, {"Content-Type": "application/json"}, json.dumps(body, default=str)


def install() -> None:
    """Patch moto's EKS backend, responses and routes (before the server starts)."""
    eks_models.EKSBackend.create_cluster = _create_cluster_keeping_access_config
    eks_models.EKSBackend.describe_cluster = _describe_cluster_where_it_answers
    EKSResponse.create_cluster = _create_cluster_response
    for operation in ("create_access_entry", "describe_access_entry", "update_access_entry", "delete_access_entry",
                      "list_access_entries", "associate_access_policy", "list_associated_access_policies",
                      "disassociate_access_policy"):
        setattr(EKSResponse, operation, getattr(AccessEntries, operation))
    from moto.core.responses import BaseResponse
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication
    from moto.sts.responses import TokenResponse

    DomainDispatcherApplication.infer_service_region_host = _infer_presigned(
        DomainDispatcherApplication.infer_service_region_host)
    BaseResponse.get_access_key = _access_key_from_query(BaseResponse.get_access_key)
    TokenResponse.get_caller_identity = _get_caller_identity_verified(TokenResponse.get_caller_identity)
    from moto.moto_api._internal import urls as moto_api_urls

    moto_api_urls.url_paths["{0}/moto-api/eks/authenticate"] = authenticate
    dispatch = eks_urls.response.dispatch
    # The principal's ARN arrives decoded (its %2F as '/'); moto's route patterns take no nested groups, so an ARN
    # is matched by its shape: a user or a role without a path (the stack's roles have none).
    principal = "(?P<principalArn>arn:[a-z-]+:iam::[0-9]+:[a-z]+/[^/]+)"
    eks_urls.url_paths.update({
        "{0}/clusters/(?P<name>[^/]+)/access-entries$": dispatch,
        "{0}/clusters/(?P<name>[^/]+)/access-entries/" + principal + "$": dispatch,
        "{0}/clusters/(?P<name>[^/]+)/access-entries/" + principal + "/access-policies$": dispatch,
        "{0}/clusters/(?P<name>[^/]+)/access-entries/" + principal
        + "/access-policies/(?P<policyArn>arn:[a-z-]+:eks::aws:cluster-access-policy/[A-Za-z]+)$": dispatch,
    })
