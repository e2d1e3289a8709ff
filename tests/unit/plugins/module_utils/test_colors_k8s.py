"""Unit tests of the failure messages every Colors Kubernetes module shares (plugins/module_utils/colors_k8s.py)."""

from __future__ import annotations

import json

from helpers import load_plugin

k8s_mod = load_plugin("plugins/module_utils/colors_k8s.py")


class ApiError(Exception):
    """What kubernetes.client raises: status, reason and the API server's Status object as body."""

    def __init__(self, status, reason, body):
        super().__init__(reason)
        self.status, self.reason, self.body = status, reason, body


def test_a_refusal_is_one_line_naming_identity_verb_resource_and_who_grants_it():
    status = {"kind": "Status", "code": 403, "reason": "Forbidden", "message": (
        'deployments.apps "colors" is forbidden: User "arn:aws:sts::123456789012:assumed-role/colors-deploy/run" '
        'cannot create resource "deployments" in API group "apps" in the namespace "colors"')}
    message = k8s_mod.api_failure("Release", ApiError(403, "Forbidden", json.dumps(status)))
    assert "\n" not in message and "{" not in message  # no raw Status dump
    assert message.startswith("Release: refused by the Kubernetes API: ")
    user = "arn:aws:sts::123456789012:assumed-role/colors-deploy/run"
    assert f'User "{user}" cannot create resource "deployments"' in message
    assert 'in the namespace "colors"' in message
    assert "roles/cluster_bootstrap" in message and "bootstrap.yml" in message


def test_a_refusal_without_a_status_body_keeps_what_the_server_said():
    assert "Forbidden" in k8s_mod.api_failure("Rollback", ApiError(403, "Forbidden", "not json"))


def test_other_failures_keep_the_server_reason_and_body():
    message = k8s_mod.api_failure("Release", ApiError(409, "Conflict", '{"message": "the object has been modified"}'))
    assert message == 'Release: Conflict {"message": "the object has been modified"}'
