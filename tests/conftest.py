"""Fixtures shared by the unit and integration tests."""

from __future__ import annotations

import pytest
from helpers import KUBECONFIG, ansible_playbook


@pytest.fixture(scope="session")
def k8s():
    """A kubernetes client for the running local platform, or a clear failure when it is down."""
    from kubernetes import client, config

    if not KUBECONFIG.exists():
        pytest.fail(f"{KUBECONFIG} is missing: the local platform is not running (run `make up`)")
    api = config.new_client_from_config(config_file=str(KUBECONFIG))
    return client.CoreV1Api(api), client.AppsV1Api(api), api


@pytest.fixture(scope="session")
def monitoring():
    """The monitoring role installed on the local platform (rules, routing, probes, dashboards): monitoring.yml."""
    result = ansible_playbook("monitoring.yml", "-i", "inventories/local")
    assert result.returncode == 0, result.stdout[-4000:]
    return result
