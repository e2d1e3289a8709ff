"""The AWS side with permissions enforced: a release and a secret rotation succeed with exactly the actions the
Terraform policies of the deploy and rollback roles grant, as the jobs get them - GitHub's through
AssumeRoleWithWebIdentity with a token carrying GitHub's claims, AWX's through its "Colors AWS role" credential,
which assumes the role from the execution node's own identity - and fail, naming it, when one action is missing.

The local AWS API enforces IAM only while a test asks for it (moto's /moto-api/reset-auth). moto evaluates the
actions of a policy, not its resources or conditions: the roles here carry Terraform's actions on "*", and the
resources and trust conditions are held on the staging and prod plans (test_terraform_plans.py)."""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

import boto3
import pytest
import yaml
from awx_launch import CONFIG, injected, launch, output
from colors_platform.workflows import fake_oidc_token
from helpers import ON_SIMULATED_NODES, PLATFORM, REPO, ansible_playbook, moto_client, terraform_plan

pytestmark = pytest.mark.platform
MOTO = f"http://127.0.0.1:{PLATFORM['ports']['moto']}"
REGION = PLATFORM["aws"]["region"]
NS = "aws-iam"
SECRET_ID = "colors-local/iam"  # noqa: S105 - a name
REPOSITORY = "colors/colors-deploy"
EXTRA_VARS = {"app_release_namespace": NS, "cluster_bootstrap_app_namespace": NS, "app_release_node_port": 0,
              "app_secrets_source": "secretsmanager",  # pragma: allowlist secret
              "app_secrets_secretsmanager_id": SECRET_ID,
              # As staging runs: nothing of the local platform is started, nothing bootstrapped on deploy.
              "colors_prelude_platform": False, "colors_bootstrap_on_deploy": False}
ARGS = ["-i", "inventories/local", *ON_SIMULATED_NODES, "-e", json.dumps(EXTRA_VARS)]


@contextlib.contextmanager
def iam_enforced():
    """Every request to the local AWS API is authenticated and authorized until the block ends."""
    def reset(count: str) -> None:
        request = urllib.request.Request(f"{MOTO}/moto-api/reset-auth", data=count.encode(), method="POST",  # noqa: S310
                                         headers={"Content-Type": "text/plain"})  # moto reads the raw body
        urllib.request.urlopen(request, timeout=10).read()  # noqa: S310 - the local AWS API, over http
    reset("0")
    try:
        yield
    finally:
        reset("inf")


# The rollback role's document starts from the deploy role's (source_policy_documents), which the plan cannot merge
# before the deploy document is known.
SOURCES = {"deploy": [], "rollback": ["deploy"]}


def _actions(planned: dict, role: str) -> list[str]:
    documents = [planned[f"module.pipeline_identity.data.aws_iam_policy_document.{name}"]
                 for name in (role, *SOURCES[role])]
    return sorted({action for document in documents for statement in document["statement"]
                   for action in statement["actions"]})


@pytest.fixture(scope="module")
def roles(k8s, tmp_path_factory):
    """The deploy and rollback roles in the local AWS API, trusted for GitHub's OIDC issuer, each with the actions
    of its Terraform policy (staging's plan); the application secret; the namespace bootstrapped as admin."""
    planned = terraform_plan("staging", tmp_path_factory.mktemp("plan"))
    module = (REPO / "terraform" / "modules" / "pipeline_identity" / "main.tf").read_text()
    rollback = module.split('data "aws_iam_policy_document" "rollback" {', 1)[1].split("\n}\n", 1)[0]
    assert "source_policy_documents = [data.aws_iam_policy_document.deploy.json]" in rollback
    iam = moto_client("iam")
    issuer = "token.actions.githubusercontent.com"
    provider = f"arn:aws:iam::123456789012:oidc-provider/{issuer}"
    # Terraform's own provider when the local stack is applied; else one of this test's, removed after it (a
    # provider left behind would make the next apply of the stack fail with EntityAlreadyExists).
    created_provider = False
    with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
        iam.create_open_id_connect_provider(Url=f"https://{issuer}", ClientIDList=["sts.amazonaws.com"],
                                            ThumbprintList=["0" * 40])
        created_provider = True
    made = {}
    for role in ("deploy", "rollback"):
        name = f"colors-iam-{role}-{uuid.uuid4().hex[:6]}"
        trust = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Federated": provider}, "Action": "sts:AssumeRoleWithWebIdentity"}]}
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        trust_plan = planned[f'module.pipeline_identity.data.aws_iam_policy_document.trust["{role}"]']["statement"]
        made[role] = {"name": name, "arn": arn, "actions": _actions(planned, role),
                      "awx_trust": next(s for s in trust_plan if s.get("sid") == "AWX")}
        _grant(name, made[role]["actions"])
    secrets = moto_client("secretsmanager")
    secrets.create_secret(Name=SECRET_ID, SecretString=json.dumps({"api_key": uuid.uuid4().hex,
                                                                   "session_key": uuid.uuid4().hex}))
    bootstrap = ansible_playbook("bootstrap.yml", *ARGS)
    assert bootstrap.returncode == 0, bootstrap.stdout[-3000:]
    yield made
    secrets.delete_secret(SecretId=SECRET_ID, ForceDeleteWithoutRecovery=True)
    for role in made.values():
        iam.delete_role_policy(RoleName=role["name"], PolicyName="pipeline")
        iam.delete_role(RoleName=role["name"])
    if created_provider:
        iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=provider)
    k8s[0].delete_namespace(NS)


def _grant(role_name: str, actions: list[str]) -> None:
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
    moto_client("iam").put_role_policy(RoleName=role_name, PolicyName="pipeline", PolicyDocument=json.dumps(policy))


def _job_credentials(role_arn: str, environment: str) -> dict[str, str]:
    """What configure-aws-credentials leaves a job: the role's session, from an unsigned AssumeRoleWithWebIdentity."""
    from botocore import UNSIGNED
    from botocore.config import Config

    sts = boto3.client("sts", endpoint_url=MOTO, region_name=REGION, config=Config(signature_version=UNSIGNED))
    creds = sts.assume_role_with_web_identity(RoleArn=role_arn, RoleSessionName="github-actions",
                                              WebIdentityToken=fake_oidc_token(REPOSITORY, environment))["Credentials"]
    return {"AWS_ACCESS_KEY_ID": creds["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
            "AWS_SESSION_TOKEN": creds["SessionToken"]}


def test_a_release_and_a_rotation_succeed_with_exactly_their_roles_actions(roles):
    print({role: r["actions"] for role, r in roles.items()})
    with iam_enforced():
        deploy = ansible_playbook("deploy.yml", *ARGS, "-e", "app_release_version=8.0.0",
                                  **_job_credentials(roles["deploy"]["arn"], "staging"))
        assert deploy.returncode == 0, deploy.stdout[-3000:]
        rotate = ansible_playbook("rotate-secrets.yml", *ARGS,
                                  **_job_credentials(roles["rollback"]["arn"], "staging-rollback"))
        assert rotate.returncode == 0, rotate.stdout[-3000:]


def test_the_rotation_fails_naming_the_action_its_role_lacks(roles):
    rollback = roles["rollback"]
    missing = "secretsmanager:UpdateSecret"
    assert missing in rollback["actions"]
    _grant(rollback["name"], [a for a in rollback["actions"] if a != missing])
    try:
        with iam_enforced():
            rotate = ansible_playbook("rotate-secrets.yml", *ARGS,
                                      **_job_credentials(rollback["arn"], "staging-rollback"))
    finally:
        _grant(rollback["name"], rollback["actions"])
    assert rotate.returncode != 0
    said = " ".join(rotate.stdout.split())
    assert f"is not authorized to perform: {missing}" in said, rotate.stdout[-3000:]
    assert "The rotation failed before it wrote new keys" in said, rotate.stdout[-2500:]
    assert "Nothing was changed." in said, rotate.stdout[-2500:]
    assert "Roll the previous keys back out" not in said, "nothing was written, so nothing is restored"


# --- AWX: the role credential, from the execution node's own identity ------------------------------------------

@contextlib.contextmanager
def instance_metadata(role_name: str, credentials: dict):
    """A stand-in for the EC2 instance metadata service (IMDSv2) of an AWX execution node: the session of its
    instance profile's role. A job reaches it as on the node, but for its address
    (AWS_EC2_METADATA_SERVICE_ENDPOINT)."""
    token = uuid.uuid4().hex
    document = json.dumps({"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": credentials["AccessKeyId"],
                           "SecretAccessKey": credentials["SecretAccessKey"], "Token": credentials["SessionToken"],
                           "Expiration": credentials["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ")})
    paths = {"/latest/meta-data/iam/security-credentials/": role_name,
             f"/latest/meta-data/iam/security-credentials/{role_name}": document}

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: str = "") -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def do_PUT(self):
            self._answer(200, token) if self.path == "/latest/api/token" else self._answer(404)

        def do_GET(self):
            if self.headers.get("X-aws-ec2-metadata-token") != token:
                self._answer(401)
            else:
                self._answer(200, paths[self.path]) if self.path in paths else self._answer(404)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()


@pytest.fixture
def awx_node(roles):
    """AWX's execution role (awx_principal_arns; outside the stack) allowed only sts:AssumeRole, trusted by the
    rollback role as Terraform's trust statement says, and the metadata service of a node running as it."""
    iam = moto_client("iam")
    name = f"colors-awx-execution-{uuid.uuid4().hex[:6]}"
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    _grant(name, ["sts:AssumeRole"])
    # Terraform's AWX statement of the rollback role's trust, naming this node's role instead of the tfvars' one.
    rollback, planned = roles["rollback"], roles["rollback"]["awx_trust"]
    trust = iam.get_role(RoleName=rollback["name"])["Role"]["AssumeRolePolicyDocument"]
    trust["Statement"].append({"Sid": planned["sid"], "Effect": "Allow", "Action": planned["actions"],
                               "Principal": {p["type"]: [arn] for p in planned["principals"]}})
    iam.update_assume_role_policy(RoleName=rollback["name"], PolicyDocument=json.dumps(trust))
    session = moto_client("sts").assume_role(RoleArn=arn, RoleSessionName="i-0awx")["Credentials"]
    with instance_metadata(name, session) as endpoint:
        yield {"name": name, "endpoint": endpoint}
    iam.delete_role_policy(RoleName=name, PolicyName="pipeline")
    iam.delete_role(RoleName=name)


def _awx_job_env(role_arn: str, node: dict, tmp_path) -> dict[str, str]:
    """What the template's "Colors AWS role" credential injects (as awx/controller.yml declares its type and
    playbooks/awx.yml its inputs), plus the local endpoints of STS and of the node's metadata service."""
    inputs = {"role_arn": role_arn, "credential_source": CONFIG["colors_awx_aws_credential_source"]}
    env = injected(CONFIG["colors_awx_aws_credential_type"], inputs, tmp_path)
    assert "AWS_ACCESS_KEY_ID" not in env and set(env) == {"AWS_CONFIG_FILE", "AWS_PROFILE"}
    return {**env, "AWS_EC2_METADATA_SERVICE_ENDPOINT": node["endpoint"], "AWS_ENDPOINT_URL_STS": MOTO}


def _awx_extra_data() -> dict:
    """ARGS, as the extra variables of an AWX launch."""
    return {**yaml.safe_load((REPO / ON_SIMULATED_NODES[1][1:]).read_text()), **EXTRA_VARS}


def test_awx_rotates_through_its_role_credential_and_fails_without_assume_role(roles, awx_node,
                                                                              execution_environment, tmp_path):
    template = next(t for t in CONFIG["colors_awx_job_templates"] if t["key"] == "rotate-secrets")
    assert template["credentials"] == ["aws-rollback"]
    env = _awx_job_env(roles["rollback"]["arn"], awx_node, tmp_path)
    before = moto_client("secretsmanager").get_secret_value(SecretId=SECRET_ID)["SecretString"]
    with iam_enforced():
        job = launch(execution_environment, tmp_path, "rotate-secrets", extra_data=_awx_extra_data(),
                     credentials_env=env)
    assert (job.status, job.rc) == ("successful", 0), output(job)[-4000:]
    assert moto_client("secretsmanager").get_secret_value(SecretId=SECRET_ID)["SecretString"] != before

    # The node's own role may do nothing but assume: without sts:AssumeRole the job cannot act at all.
    _grant(awx_node["name"], ["sts:GetCallerIdentity"])
    (tmp_path / "denied").mkdir()
    with iam_enforced():
        job = launch(execution_environment, tmp_path / "denied", "rotate-secrets", extra_data=_awx_extra_data(),
                     credentials_env=env)
    said = " ".join(output(job).split())
    assert job.status == "failed" and "is not authorized to perform: sts:AssumeRole" in said, said[-4000:]
