"""Application secrets: synced from the vault (local) or Secrets Manager into the Secret the pods mount, rotated
end to end against the local AWS API and cluster, and never printed — even at -vvv."""

from __future__ import annotations

import base64
import datetime
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from helpers import RELEASE_ONLY, REPO, ansible_playbook, moto_client

pytestmark = pytest.mark.platform
NS = "colors"
# A secret of these tests' own (the names are the keys', not values): Terraform creates colors-local/app, and the
# infrastructure role's Molecule scenario applies and destroys it while these tests run (tools/run_suite.py).
SECRET_ID = "colors-local/app-rotation"  # noqa: S105
SM = ("-e", "app_secrets_source=secretsmanager", "-e", f"app_secrets_secretsmanager_id={SECRET_ID}")


def vault_values() -> dict[str, str]:
    view = subprocess.run([str(Path(sys.executable).parent / "ansible-vault"), "view",
                           "inventories/local/group_vars/all/vault.yml"], cwd=REPO, capture_output=True, text=True,
                          check=True, env={"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": "/usr/bin:/bin"})
    return yaml.safe_load(view.stdout)["vault_app_secrets"]


def k8s_secret(k8s) -> dict[str, str]:
    core, _, _ = k8s
    secret = core.read_namespaced_secret("colors-app", NS)
    return {k: base64.b64decode(v).decode() for k, v in secret.data.items()}


def pod_checksum(k8s) -> str:
    _, apps, _ = k8s
    template = apps.read_namespaced_deployment("colors", NS).spec.template
    return template.metadata.annotations["colors.io/secrets-checksum"]


def assert_no_value_in(output: str, *values: str) -> None:
    """Neither the value nor its base64 form (a Secret's data) appears."""
    leaked = [v[:4] + "…" for v in values if v in output or base64.b64encode(v.encode()).decode() in output]
    assert not leaked, f"secret values appear in the output: {leaked}"


@pytest.fixture
def sm_secret():
    """The app's secret in the local AWS API, as Terraform creates it in staging and prod."""
    client = moto_client("secretsmanager")
    original = {"api_key": f"orig-api-{uuid.uuid4().hex}", "session_key": f"orig-session-{uuid.uuid4().hex}"}
    try:
        client.create_secret(Name=SECRET_ID, SecretString=json.dumps(original))
    except client.exceptions.ResourceExistsException:
        client.put_secret_value(SecretId=SECRET_ID, SecretString=json.dumps(original))
    yield client, original
    client.delete_secret(SecretId=SECRET_ID, ForceDeleteWithoutRecovery=True)


def test_deploy_mounts_the_vault_secret_and_prints_no_value(k8s):
    result = ansible_playbook("deploy.yml", "-i", "inventories/local", "-vvv")
    assert result.returncode == 0, result.stdout[-3000:]
    values = vault_values()
    assert k8s_secret(k8s) == values
    assert_no_value_in(result.stdout + result.stderr, *values.values())
    _, apps, _ = k8s
    spec = apps.read_namespaced_deployment("colors", NS).spec.template.spec
    assert spec.volumes[0].secret.secret_name == "colors-app"  # noqa: S105 - a name
    assert {e.name: e.value for e in spec.containers[0].env}["COLORS_API_KEY_FILE"] == "/run/secrets/colors/api_key"


def test_rotation_replaces_the_keys_keeps_the_previous_version_and_rolls_the_pods(k8s, sm_secret):
    client, original = sm_secret
    deployed = ansible_playbook("deploy.yml", "-i", "inventories/local", *RELEASE_ONLY, *SM)
    assert deployed.returncode == 0, deployed.stdout[-3000:]
    assert k8s_secret(k8s) == original
    checksum_before = pod_checksum(k8s)

    result = ansible_playbook("rotate-secrets.yml", "-i", "inventories/local", *SM, "-vvv")
    assert result.returncode == 0, result.stdout[-4000:]

    current = json.loads(client.get_secret_value(SecretId=SECRET_ID)["SecretString"])
    previous = json.loads(client.get_secret_value(SecretId=SECRET_ID, VersionStage="AWSPREVIOUS")["SecretString"])
    assert previous == original, "the replaced value must stay as AWSPREVIOUS"
    assert current["api_key"] != original["api_key"] and len(current["api_key"]) == 40
    assert current["session_key"] != original["session_key"] and len(current["session_key"]) == 64
    assert k8s_secret(k8s) == current, "the Kubernetes Secret does not hold the new keys"
    assert pod_checksum(k8s) != checksum_before, "the pods were not rolled with the new keys"
    _, apps, _ = k8s
    status = apps.read_namespaced_deployment("colors", NS).status
    assert status.updated_replicas == status.replicas == status.available_replicas
    assert_no_value_in(result.stdout + result.stderr, *original.values(), *current.values())


def test_rotation_needs_secrets_manager(k8s):
    result = ansible_playbook("rotate-secrets.yml", "-i", "inventories/local")
    assert result.returncode != 0
    assert "Rotation writes new values to AWS Secrets Manager, but app_secrets_source=vault" in result.stdout


def test_a_missing_secret_is_named_before_anything_changes(k8s):
    _, apps, _ = k8s
    generation = apps.read_namespaced_deployment("colors", NS).metadata.generation
    result = ansible_playbook("deploy.yml", "-i", "inventories/local", "-e", "app_secrets_source=secretsmanager",
                              "-e", "app_secrets_secretsmanager_id=colors-local/nope")
    assert result.returncode != 0
    assert "(colors-local/nope) does not exist or is not a JSON object" in result.stdout
    assert apps.read_namespaced_deployment("colors", NS).metadata.generation == generation


def test_a_rotation_that_fails_verification_restores_the_previous_keys(k8s, sm_secret):
    """The new keys' rollout fails its HTTP smoke gate: the old value is current again, in AWS and in the Secret."""
    client, original = sm_secret
    assert ansible_playbook("deploy.yml", "-i", "inventories/local", *RELEASE_ONLY, *SM).returncode == 0
    result = ansible_playbook("rotate-secrets.yml", "-i", "inventories/local", *SM,
                              "-e", "app_release_smoke_url=http://127.0.0.1:9/unreachable")
    assert result.returncode != 0
    assert "The rotated keys failed verification" in result.stdout
    assert "failed gate http-smoke" in result.stdout
    current = json.loads(client.get_secret_value(SecretId=SECRET_ID)["SecretString"])
    assert current == original, "the previous keys are not current again"
    assert k8s_secret(k8s) == original, "the Kubernetes Secret still holds the rejected keys"


def test_a_rotation_while_a_release_holds_the_lock_is_refused_before_anything_changes(k8s, sm_secret):
    """The rotation takes the release lock before its first write: while another run holds it, neither Secrets
    Manager nor the Kubernetes Secret changes (before, the keys were rotated and only the rollout was refused)."""
    from kubernetes import client

    secrets, original = sm_secret
    assert ansible_playbook("deploy.yml", "-i", "inventories/local", *RELEASE_ONLY, *SM).returncode == 0
    before = k8s_secret(k8s)
    versions = {v["VersionId"] for v in secrets.list_secret_version_ids(SecretId=SECRET_ID)["Versions"]}
    now = datetime.datetime.now(datetime.UTC)
    leases = client.CoordinationV1Api(k8s[2])
    leases.create_namespaced_lease(NS, client.V1Lease(
        metadata=client.V1ObjectMeta(name="colors-release"),
        spec=client.V1LeaseSpec(holder_identity="release-engineer/run-1", lease_duration_seconds=60,
                                acquire_time=now, renew_time=now)))
    try:
        result = ansible_playbook("rotate-secrets.yml", "-i", "inventories/local", *SM)
    finally:
        leases.delete_namespaced_lease("colors-release", NS)
    said = " ".join(result.stdout.split())
    held = "Another release is running: release lock colors/colors-release is held by release-engineer/run-1"
    assert result.returncode != 0 and held in said, said[-3000:]
    assert json.loads(secrets.get_secret_value(SecretId=SECRET_ID)["SecretString"]) == original
    # No version written at all (a rotation that wrote first would have restored the value, but kept its version).
    assert {v["VersionId"] for v in secrets.list_secret_version_ids(SecretId=SECRET_ID)["Versions"]} == versions
    assert k8s_secret(k8s) == before
