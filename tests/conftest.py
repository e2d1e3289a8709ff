"""Fixtures shared by the unit and integration tests."""

from __future__ import annotations

import pytest
from helpers import KUBECONFIG


@pytest.fixture(scope="session")
def k8s():
    """A kubernetes client for the running local platform, or a clear failure when it is down."""
    from kubernetes import client, config

    if not KUBECONFIG.exists():
        pytest.fail(f"{KUBECONFIG} is missing: the local platform is not running (run `make up`)")
    api = config.new_client_from_config(config_file=str(KUBECONFIG))
    return client.CoreV1Api(api), client.AppsV1Api(api), api
