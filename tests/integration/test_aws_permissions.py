"""The AWS side with permissions enforced: a release and a secret rotation succeed with exactly the actions the
Terraform policies of the deploy and rollback roles grant, as the jobs get them - AssumeRoleWithWebIdentity with a
token carrying GitHub's claims - and fail, naming it, when one action is missing.

The local AWS API enforces IAM only while a test asks for it (moto's /moto-api/reset-auth). moto evaluates the
actions of a policy, not its resources or conditions: the roles here carry Terraform's actions on "*", and the
resources and trust conditions are held on the staging and prod plans (test_terraform_plans.py)."""

from __future__ import annotations

import contextlib
import json
import urllib.request
import uuid

import boto3
import pytest
from colors_platform.workflows import fake_oidc_token
from helpers import ON_SIMULATED_NODES, PLATFORM, REPO, ansible_playbook, moto_client, terraform_plan

pytestmark = pytest.mark.platform
MOTO = f"http://127.0.0.1:{PLATFORM['ports']['moto']}"
REGION = PLATFORM["aws"]["region"]
NS = "aws-iam"
SECRET_ID = "colors-local/iam"  # noqa: S105 - a name
REPOSITORY = "colors/colors-deploy"
ARGS = ["-i", "inventories/local", *ON_SIMULATED_NODES, "-e", f"app_release_namespace={NS}",
        "-e", f"cluster_bootstrap_app_namespace={NS}", "-e", "app_release_node_port=0",
        "-e", "app_secrets_source=secretsmanager", "-e", f"app_secrets_secretsmanager_id={SECRET_ID}",
        # As staging runs: nothing of the local platform is started, nothing bootstrapped on deploy.
        "-e", '{"colors_prelude_platform": false, "colors_bootstrap_on_deploy": false}']


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
        made[role] = {"name": name, "arn": arn, "actions": _actions(planned, role)}
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
