"""Unit tests of the release engine's filters (plugins/filter/release.py)."""

from __future__ import annotations

import importlib.util

import pytest
from ansible.errors import AnsibleFilterError
from helpers import REPO

spec = importlib.util.spec_from_file_location("release_filters", REPO / "plugins" / "filter" / "release.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
F = module.FilterModule().filters()


@pytest.mark.parametrize(("ref", "registry", "repository", "tag", "digest"), [
    ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/colors:1.4.2",
     "123456789012.dkr.ecr.eu-west-1.amazonaws.com", "colors", "1.4.2", None),
    ("localhost/colors:0.1.0-drill-crashloop", "localhost", "colors", "0.1.0-drill-crashloop", None),
    ("localhost:5000/team/colors", "localhost:5000", "team/colors", "latest", None),
    ("nginx", "docker.io", "library/nginx", "latest", None),
    ("myorg/colors:2", "docker.io", "myorg/colors", "2", None),
    ("registry.invalid/colors@sha256:" + "a" * 64, "registry.invalid", "colors", None, "sha256:" + "a" * 64),
    ("ghcr.io/a/b/c:1.0@sha256:" + "b" * 64, "ghcr.io", "a/b/c", "1.0", "sha256:" + "b" * 64),
])
def test_image_ref_splits_a_reference(ref, registry, repository, tag, digest):
    parsed = F["image_ref"](ref)
    assert (parsed["registry"], parsed["repository"], parsed["tag"], parsed["digest"]) == (
        registry, repository, tag, digest)
    assert parsed["name"] == f"{registry}/{repository}"


@pytest.mark.parametrize("ref", ["", "Colors:1.0", "colors:", "colors:1.0 ", "colors@sha256:xyz", "/colors",
                                 "colors::1", None, 42])
def test_image_ref_refuses_a_malformed_reference_quoting_it(ref):
    with pytest.raises(AnsibleFilterError) as err:
        F["image_ref"](ref)
    assert repr(ref) in str(err.value)


def test_semver_parses_prerelease_and_build():
    assert F["semver"]("1.5.0-rc.1+build.7") == {"major": 1, "minor": 5, "patch": 0,
                                                 "prerelease": ["rc", "1"], "build": "build.7"}


@pytest.mark.parametrize(("a", "b", "expected"), [
    ("1.4.2", "1.4.2", 0), ("1.4.10", "1.4.9", 1), ("1.10.0", "1.9.9", 1), ("2.0.0", "10.0.0", -1),
    ("1.0.0-rc.1", "1.0.0", -1), ("1.0.0-alpha", "1.0.0-alpha.1", -1), ("1.0.0-alpha.1", "1.0.0-alpha.beta", -1),
    ("1.0.0-beta.2", "1.0.0-beta.11", -1), ("1.0.0-rc.1", "1.0.0-beta.11", 1), ("1.0.0+a", "1.0.0+b", 0),
])
def test_semver_compare_follows_semver_precedence(a, b, expected):
    assert F["semver_compare"](a, b) == expected
    assert F["semver_compare"](b, a) == -expected


@pytest.mark.parametrize("value", ["v1.2.3", "1.2", "01.2.3", "1.2.3-", "1.2.3.4", 1.2, None])
def test_semver_refuses_a_malformed_version_quoting_it(value):
    with pytest.raises(AnsibleFilterError, match=r"is not a semantic version") as err:
        F["semver"](value)
    assert repr(value) in str(err.value)


def test_canary_steps_give_at_least_one_canary_and_end_at_full_rollout():
    assert F["canary_steps"]([10, 50], 4) == [
        {"percent": 10, "canary": 1, "stable": 3},
        {"percent": 50, "canary": 2, "stable": 2},
        {"percent": 100, "canary": 4, "stable": 0},
    ]
    assert F["canary_steps"]([25, 100], 3)[-1] == {"percent": 100, "canary": 3, "stable": 0}
    assert F["canary_steps"](["33.3"], 10)[0] == {"percent": 33.3, "canary": 4, "stable": 6}


@pytest.mark.parametrize(("steps", "replicas", "quoted"), [
    ([50, 20], 4, "20"), ([0], 4, "0"), ([150], 4, "150"), (["half"], 4, "'half'"), ([], 4, "[]"),
    ([10], 0, "0"), ([10], "many", "'many'"),
])
def test_canary_steps_refuse_bad_input_quoting_it(steps, replicas, quoted):
    with pytest.raises(AnsibleFilterError) as err:
        F["canary_steps"](steps, replicas)
    assert quoted in str(err.value)


@pytest.mark.parametrize(("value", "seconds"), [
    (90, 90), ("90", 90), ("90s", 90), ("1m30s", 90), ("2h", 7200), ("500ms", 0.5), ("1.5m", 90), (0.25, 0.25),
])
def test_duration_seconds(value, seconds):
    assert F["duration_seconds"](value) == seconds


@pytest.mark.parametrize("value", ["", "1 m", "10x", "m5", "-5s", -3, True, "1m30"])
def test_duration_seconds_refuses_bad_input_quoting_it(value):
    with pytest.raises(AnsibleFilterError) as err:
        F["duration_seconds"](value)
    assert repr(value) in str(err.value)


def _svc(kind="NodePort", node_port=31234):
    port = {"name": "http", "port": 80, **({"nodePort": node_port} if node_port else {})}
    return {"metadata": {"name": "colors", "namespace": "colors"}, "spec": {"type": kind, "ports": [port]}}


def _pod(node, ready=True, deleting=False):
    meta = {"name": f"p-{node}", **({"deletionTimestamp": "2026-01-01T00:00:00Z"} if deleting else {})}
    return {"metadata": meta, "spec": {"nodeName": node},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def _node(name, address=None):
    addresses = [{"type": "InternalIP", "address": address}] if address else []
    return {"metadata": {"name": name}, "status": {"addresses": addresses}}


def test_dashboard_url_is_the_node_port_of_a_node_running_a_ready_pod():
    nodes = [_node("kwok-node-0"), _node("colors-node-0", "192.0.2.2"), _node("other", "192.0.2.9")]
    pods = [_pod("kwok-node-0"), _pod("other", ready=False), _pod("colors-node-0")]
    result = F["dashboard_url"](_svc(), pods, nodes)
    assert result["url"] == "http://192.0.2.2:31234/"
    assert "colors-node-0" in result["how"]


def test_dashboard_url_without_a_reachable_pod_says_why_and_gives_the_cluster_name():
    nodes = [_node("kwok-node-0"), _node("colors-node-0", "192.0.2.2")]
    pods = [_pod("kwok-node-0"), _pod("colors-node-0", deleting=True)]
    result = F["dashboard_url"](_svc(), pods, nodes)
    assert result["url"] == "" and "http://colors.colors.svc:80/" in result["how"]
    assert F["dashboard_url"](_svc("ClusterIP", None), pods, nodes)["url"] == ""


def test_dashboard_url_prefers_the_public_url_and_refuses_what_is_not_a_service():
    assert F["dashboard_url"](_svc(), [], [], "https://colors.example.com/")["url"] == "https://colors.example.com/"
    with pytest.raises(AnsibleFilterError, match="expected a Service"):
        F["dashboard_url"]({}, [], [])
