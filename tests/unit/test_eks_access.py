"""EKS access as EKS has it, on a moto server of the local platform's own (localplatform/moto_server.py, started here
on a free port): the cluster's authentication mode and access entries (moto_eks.py), a presigned GetCallerIdentity
verified by its signature, and the EKS authenticator stand-in (eks_authenticator.py) turning an `aws eks get-token`
token into the Kubernetes user and groups of the caller's access entry - or refusing it, with the reason. The
authenticator is asked as the API server asks it: a TokenReview posted to moto's webhook."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import boto3
import pytest
from helpers import REPO, free_port, load_plugin

authenticator = load_plugin("localplatform/eks_authenticator.py", "eks_authenticator")
ADMIN_POLICY = authenticator.ADMIN_POLICY
ACCOUNT, REGION, CLUSTER = "111111111111", "eu-west-1", "colors-staging"
DEPLOY_ROLE = f"arn:aws:iam::{ACCOUNT}:role/colors-staging-deploy"
ADMIN_ROLE = f"arn:aws:iam::{ACCOUNT}:role/colors-staging-infrastructure"


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    """A moto server with the platform's patches, and the endpoints file that says where the cluster answers."""
    endpoints = tmp_path_factory.mktemp("eks") / "endpoints.json"
    port = free_port()
    env = {"COLORS_EKS_ENDPOINTS": str(endpoints), "PATH": "/usr/bin:/bin"}
    server = subprocess.Popen([sys.executable, str(REPO / "localplatform" / "moto_server.py"), "-H", "127.0.0.1",
                               "-p", str(port)], cwd=REPO / "localplatform", env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()  # noqa: S310 - loopback
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("the moto server did not start")
            time.sleep(0.2)
    yield url, endpoints
    server.kill()
    server.wait()


def client(moto_url: str, service: str, **credentials):
    credentials = credentials or {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    session = boto3.session.Session(region_name=REGION, **credentials)
    c = session.client(service, endpoint_url=moto_url)
    c.meta.events.register(f"before-send.{service}.*",
                           lambda request, **_: request.headers.__setitem__("x-moto-account-id", ACCOUNT))
    return c


@pytest.fixture(scope="module")
def cluster(moto):
    url, endpoints = moto
    iam, eks = client(url, "iam"), client(url, "eks")
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}]})
    for arn in (DEPLOY_ROLE, ADMIN_ROLE, f"arn:aws:iam::{ACCOUNT}:role/colors-staging-unmapped"):
        iam.create_role(RoleName=arn.rsplit("/", 1)[1], AssumeRolePolicyDocument=trust)
    eks.create_cluster(name=CLUSTER, roleArn=f"arn:aws:iam::{ACCOUNT}:role/colors-staging-cluster",
                       resourcesVpcConfig={"subnetIds": []},
                       accessConfig={"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": True})
    eks.create_access_entry(clusterName=CLUSTER, principalArn=DEPLOY_ROLE, kubernetesGroups=["colors:deployers"])
    eks.create_access_entry(clusterName=CLUSTER, principalArn=ADMIN_ROLE)
    eks.associate_access_policy(clusterName=CLUSTER, principalArn=ADMIN_ROLE, accessScope={"type": "cluster"},
                                policyArn=ADMIN_POLICY)
    endpoints.write_text(json.dumps({CLUSTER: {"endpoint": "https://127.0.0.1:26443", "account": ACCOUNT,
                                               "region": REGION, "certificateAuthority": "Q0E="}}))
    return eks


def session_of(moto_url: str, role_arn: str, name: str = "GitHubActions") -> dict:
    creds = client(moto_url, "sts").assume_role(RoleArn=role_arn, RoleSessionName=name)["Credentials"]
    return {"aws_access_key_id": creds["AccessKeyId"], "aws_secret_access_key": creds["SecretAccessKey"],
            "aws_session_token": creds["SessionToken"]}


def eks_token(credentials: dict, cluster: str = CLUSTER, signed_ago: float = 0) -> str:
    """What `aws eks get-token --cluster-name <cluster>` prints as the token (awscli's get_token.py): a presigned
    GetCallerIdentity of the regional STS endpoint, valid 60 s by its URL, with the cluster's name in the signed
    header x-k8s-aws-id - signed `signed_ago` seconds ago."""
    import datetime
    from unittest import mock

    import botocore.auth

    sts = boto3.session.Session(region_name=REGION, **credentials).client("sts")
    sts.meta.events.register("before-sign.sts.GetCallerIdentity",
                             lambda request, **_: request.headers.__setitem__("x-k8s-aws-id", cluster))
    then = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(seconds=signed_ago)
    with mock.patch.object(botocore.auth, "get_current_datetime", lambda: then):
        url = sts.generate_presigned_url("get_caller_identity", Params={}, ExpiresIn=60, HttpMethod="GET")
    return "k8s-aws-v1." + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def review(moto, token: str) -> dict:
    """The status of a TokenReview of the token, as the API server's webhook token authenticator asks moto."""
    body = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}})
    request = urllib.request.Request(f"{moto[0]}/moto-api/eks/authenticate", data=body.encode(),  # noqa: S310
                                     method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - loopback
        answer = json.loads(resp.read())
    assert answer["kind"] == "TokenReview" and answer["apiVersion"] == "authentication.k8s.io/v1"
    return answer["status"]


def test_the_cluster_keeps_its_authentication_mode_and_answers_where_the_endpoints_file_says(moto, cluster):
    described = cluster.describe_cluster(name=CLUSTER)["cluster"]
    assert described["accessConfig"] == {"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": True}
    assert described["endpoint"] == "https://127.0.0.1:26443"
    assert described["certificateAuthority"]["data"] == "Q0E="


def test_access_entries_and_policies_are_kept_as_eks_keeps_them(cluster):
    assert cluster.list_access_entries(clusterName=CLUSTER)["accessEntries"] == sorted([DEPLOY_ROLE, ADMIN_ROLE])
    entry = cluster.describe_access_entry(clusterName=CLUSTER, principalArn=DEPLOY_ROLE)["accessEntry"]
    assert entry["kubernetesGroups"] == ["colors:deployers"] and entry["type"] == "STANDARD"
    assert entry["username"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/colors-staging-deploy/{{{{SessionName}}}}"
    policies = cluster.list_associated_access_policies(clusterName=CLUSTER, principalArn=ADMIN_ROLE)
    assert [p["policyArn"] for p in policies["associatedAccessPolicies"]] == [ADMIN_POLICY]
    with pytest.raises(cluster.exceptions.ResourceInUseException):
        cluster.create_access_entry(clusterName=CLUSTER, principalArn=DEPLOY_ROLE)


def test_the_deploy_roles_token_authenticates_as_its_session_in_its_entrys_groups(moto, cluster):
    status = review(moto, eks_token(session_of(moto[0], DEPLOY_ROLE)))
    assert status == {"authenticated": True, "user": {
        "username": f"arn:aws:sts::{ACCOUNT}:assumed-role/colors-staging-deploy/GitHubActions",
        "uid": f"aws-iam-authenticator:{ACCOUNT}:colors-staging-deploy", "groups": ["colors:deployers"],
        "extra": {"arn": [f"arn:aws:sts::{ACCOUNT}:assumed-role/colors-staging-deploy/GitHubActions"],
                  "canonicalArn": [DEPLOY_ROLE], "sessionName": ["GitHubActions"]}}}


def test_a_token_is_answered_for_fifteen_minutes_after_it_was_signed(moto, cluster):
    """STS recomputes the signature with the token's own X-Amz-Date, not the time it is asked, and answers it for
    15 minutes whatever its URL's 60 s (the kubeconfig's exec plugin reuses a token for 14 minutes). Before, one
    verified only within the second it was signed, and a release's later calls got 401."""
    token = eks_token(session_of(moto[0], DEPLOY_ROLE, "earlier"))
    time.sleep(1.1)
    assert review(moto, token)["authenticated"]
    assert review(moto, eks_token(session_of(moto[0], DEPLOY_ROLE, "earlier"), signed_ago=14 * 60))["authenticated"]


def test_the_cluster_admin_policy_makes_a_cluster_administrator(moto, cluster):
    status = review(moto, eks_token(session_of(moto[0], ADMIN_ROLE, "awx")))
    assert status["authenticated"] and status["user"]["groups"] == ["system:masters"]


@pytest.mark.parametrize(("case", "expected"), [
    ("no entry", "colors-staging-unmapped has no access entry on cluster colors-staging"),
    ("another cluster", "STS did not verify the token for any cluster this API server serves: the signature"),
    ("tampered", "STS did not verify the token for any cluster this API server serves: the signature"),
    ("expired", "expired"),
    ("not sts", "not an STS endpoint"),
    ("not a token", "not an EKS token"),
])
def test_a_token_that_proves_nothing_is_refused_naming_why(moto, cluster, case, expected):
    url = moto[0]
    if case == "no entry":
        token = eks_token(session_of(url, f"arn:aws:iam::{ACCOUNT}:role/colors-staging-unmapped"))
    elif case == "another cluster":
        token = eks_token(session_of(url, DEPLOY_ROLE), cluster="colors-prod")
    elif case == "tampered":  # the role's session keys, but the signature of another request
        raw = base64.urlsafe_b64decode(eks_token(session_of(url, DEPLOY_ROLE))[11:] + "==").decode()
        token = "k8s-aws-v1." + base64.urlsafe_b64encode(raw.replace("Version=2011-06-15", "Version=2011-06-16")
                                                         .encode()).decode().rstrip("=")
    elif case == "expired":
        token = eks_token(session_of(url, DEPLOY_ROLE), signed_ago=16 * 60)
    elif case == "not sts":
        raw = base64.urlsafe_b64decode(eks_token(session_of(url, DEPLOY_ROLE))[11:] + "==").decode()
        token = "k8s-aws-v1." + base64.urlsafe_b64encode(raw.replace("sts.eu-west-1.amazonaws.com", "evil.example")
                                                         .encode()).decode().rstrip("=")
    else:
        token = "Bearer something"  # noqa: S105 - a malformed token
    status = review(moto, token)
    assert not status["authenticated"] and expected in status["error"], status


def test_sts_answers_a_presigned_get_caller_identity_only_for_its_own_signature(moto, cluster):
    """The token's request as STS receives it (moto at the STS host): the caller for the signed cluster name, and
    SignatureDoesNotMatch for any other."""
    import urllib.error

    raw = base64.urlsafe_b64decode(eks_token(session_of(moto[0], DEPLOY_ROLE, "direct"))[11:] + "==").decode()
    url = urllib.parse.urlsplit(raw)

    def ask(cluster_name: str):
        headers = {"Host": url.netloc, "x-k8s-aws-id": cluster_name}
        request = urllib.request.Request(f"{moto[0]}/?{url.query}", headers=headers)  # noqa: S310 - loopback
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - loopback
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    status, body = ask(CLUSTER)
    assert status == 200 and f"<Arn>arn:aws:sts::{ACCOUNT}:assumed-role/colors-staging-deploy/direct</Arn>" in body
    status, body = ask("colors-prod")
    assert status >= 400 and "SignatureDoesNotMatch" in body


def test_with_iam_enforced_policies_are_judged_as_aws_judges_them(moto, cluster):
    """moto's gaps that stopped staging's Terraform and its deploy role under enforced IAM, closed in
    moto_server.py: a GET without a body (EKS DescribeCluster) is signed over the empty payload; a Deny on
    aws:SecureTransport = false (the state bucket's) does not apply to a request over TLS, as the SDKs make them;
    a statement scoped to a resource (Terraform's least-privilege policies) allows its actions."""
    url = moto[0]
    iam, s3 = client(url, "iam"), client(url, "s3")
    bucket = "colors-iam-test-state"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyPlainHttp", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}))
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}]})
    scoped = [f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/{CLUSTER}", f"arn:aws:s3:::{bucket}/*"]
    for name, statement in (("colors-iam-test-deploy", {"Action": ["eks:DescribeCluster", "s3:*"], "Resource": scoped}),
                            ("colors-iam-test-other", {"Action": "ec2:DescribeVpcs", "Resource": "*"})):
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)
        iam.put_role_policy(RoleName=name, PolicyName="p", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", **statement}]}))
    deploy = session_of(url, f"arn:aws:iam::{ACCOUNT}:role/colors-iam-test-deploy")
    other = session_of(url, f"arn:aws:iam::{ACCOUNT}:role/colors-iam-test-other")

    def reset(count: bytes) -> None:
        request = urllib.request.Request(f"{url}/moto-api/reset-auth", data=count, method="POST",  # noqa: S310
                                         headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(request, timeout=10).read()  # noqa: S310 - loopback

    reset(b"0")
    try:
        assert client(url, "eks", **deploy).describe_cluster(name=CLUSTER)["cluster"]["name"] == CLUSTER
        client(url, "s3", **deploy).put_object(Bucket=bucket, Key="state", Body=b"{}")
        assert client(url, "s3", **deploy).get_object(Bucket=bucket, Key="state")["Body"].read() == b"{}"
        eks = client(url, "eks", **other)
        with pytest.raises(eks.exceptions.ClientError, match="not authorized to perform: eks:DescribeCluster"):
            eks.describe_cluster(name=CLUSTER)
    finally:
        reset(b"inf")


def test_iam_enforced_in_one_account_leaves_the_other_accounts_as_they_were(moto):
    """POST /moto-api/enforce-iam: the staging rehearsal's account checks every request (signature, then policies)
    while the local environment's account, which another lane's tests use at the same time, is not checked."""
    url = moto[0]

    def enforce(accounts) -> tuple[int, dict]:
        request = urllib.request.Request(f"{url}/moto-api/enforce-iam", method="POST",  # noqa: S310
                                         data=json.dumps({"accounts": accounts}).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    iam = client(url, "iam")
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}]})
    iam.create_role(RoleName="colors-iam-test-lister", AssumeRolePolicyDocument=trust)
    iam.put_role_policy(RoleName="colors-iam-test-lister", PolicyName="p", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:ListRoles", "Resource": "*"}]}))
    lister = session_of(url, f"arn:aws:iam::{ACCOUNT}:role/colors-iam-test-lister")
    default_account = boto3.session.Session(region_name=REGION, aws_access_key_id="testing",
                                            aws_secret_access_key="testing").client(  # noqa: S106 # pragma: allowlist secret
        "iam", endpoint_url=url)
    assert enforce(["not-an-account"])[0] == 400
    assert enforce([ACCOUNT]) == (200, {"previous": [], "accounts": [ACCOUNT]})
    try:
        assert default_account.list_users()["Users"] == []  # another account: unchecked
        with pytest.raises(iam.exceptions.ClientError, match="InvalidClientTokenId"):
            iam.list_roles()  # keys IAM never issued, in the enforced account
        assert client(url, "iam", **lister).list_roles()["Roles"]
        with pytest.raises(iam.exceptions.ClientError, match="not authorized to perform: iam:ListUsers"):
            client(url, "iam", **lister).list_users()
    finally:
        assert enforce([])[1]["previous"] == [ACCOUNT]
    assert iam.list_roles()["Roles"]
