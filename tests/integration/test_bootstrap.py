"""bootstrap.yml on the real API server: idempotent, check mode changes nothing, least privilege is proven
by SubjectAccessReviews and the proof fails as soon as the deployer is given more."""

from __future__ import annotations

import contextlib

import pytest
import yaml
from helpers import REPO, ansible_playbook, recap
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.platform
NS = "colors"


@pytest.fixture(scope="module")
def bootstrapped():
    result = ansible_playbook("bootstrap.yml", "-i", "inventories/local")
    assert result.returncode == 0, result.stdout[-4000:]
    return result


def test_bootstrap_proves_least_privilege_and_a_second_run_changes_nothing(bootstrapped):
    matrix = yaml.safe_load((REPO / "roles" / "cluster_bootstrap" / "vars" / "main.yml").read_text())[
        "_cluster_bootstrap_access_matrix"]
    assert len(matrix) >= 30
    assert f"{len(matrix)} access checks match the least-privilege matrix" in bootstrapped.stdout
    again = ansible_playbook("bootstrap.yml", "-i", "inventories/local")
    assert again.returncode == 0, again.stdout[-3000:]
    assert recap(again)["changed"] == 0


def test_check_mode_shows_the_diff_and_changes_nothing(k8s, bootstrapped):
    core, _, _ = k8s
    result = ansible_playbook("bootstrap.yml", "-i", "inventories/local", "--check", "--diff",
                              "-e", '{"cluster_bootstrap_quota": {"pods": "41"}}')
    assert result.returncode == 0, result.stdout[-3000:]
    assert recap(result)["changed"] >= 1
    assert "ResourceQuota colors/colors spec.hard.pods: ''40'' -> ''41''" in result.stdout
    assert core.read_namespaced_resource_quota("colors", NS).spec.hard["pods"] == "40"


def _audit():
    return ansible_playbook("access_audit.yml", "-i", "inventories/local")


def test_the_audit_fails_when_the_deployer_role_is_widened(k8s, bootstrapped):
    from kubernetes import client

    _, _, api = k8s
    rbac = client.RbacAuthorizationV1Api(api)
    role = rbac.read_namespaced_role("colors-deployer", NS)
    role.rules.append(client.V1PolicyRule(api_groups=["rbac.authorization.k8s.io"],
                                          resources=["rolebindings", "roles"], verbs=["*"]))
    rbac.replace_namespaced_role("colors-deployer", NS, role)
    try:
        widened = _audit()
        assert widened.returncode != 0
        assert "deployer CAN create rolebindings in colors" in widened.stdout
        assert "deployer CAN update roles in colors" in widened.stdout
    finally:
        restored = ansible_playbook("bootstrap.yml", "-i", "inventories/local")
    assert restored.returncode == 0 and recap(restored)["changed"] >= 1
    assert _audit().returncode == 0


def test_the_audit_fails_when_the_deployer_is_bound_cluster_wide(k8s, bootstrapped):
    from kubernetes import client

    _, _, api = k8s
    rbac = client.RbacAuthorizationV1Api(api)
    binding = client.V1ClusterRoleBinding(
        metadata=client.V1ObjectMeta(name="test-widen-deployer"),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="view"),
        # The group EKS maps the deploy role to: the identity that really deploys.
        subjects=[client.RbacV1Subject(kind="Group", name="colors:deployers", api_group="rbac.authorization.k8s.io")])
    rbac.create_cluster_role_binding(binding)
    try:
        widened = _audit()
        assert widened.returncode != 0
        assert "deployer CAN list pods in kube-system (expected denied)" in widened.stdout
        assert "deployer CAN get configmaps in kube-system (expected denied)" in widened.stdout
        assert "secrets" not in widened.stdout.split("Access differs")[1]  # view never reads Secrets
    finally:
        with contextlib.suppress(ApiException):
            rbac.delete_cluster_role_binding("test-widen-deployer")
    assert _audit().returncode == 0
