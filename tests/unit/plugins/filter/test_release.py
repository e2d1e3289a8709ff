"""Unit tests of the release engine's filters (plugins/filter/release.py)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from helpers import load_plugin

F = load_plugin("plugins/filter/release.py").FilterModule().filters()


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


def _pod(node, ready=True, deleting=False, host_ip="192.0.2.2", runtime=True):
    """A pod on `node`; runtime=False is a simulated (kwok) pod: kwok gives it a host address but no container id."""
    meta = {"name": f"p-{node}", **({"deletionTimestamp": "2026-01-01T00:00:00Z"} if deleting else {})}
    container = {"name": "colors", **({"containerID": "containerd://0123"} if runtime else {})}
    return {"metadata": meta, "spec": {"nodeName": node},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}], "hostIP": host_ip,
                       "containerStatuses": [container]}}


def test_dashboard_url_is_the_node_port_on_the_host_of_a_ready_pod_a_container_runtime_runs():
    pods = [_pod("kwok-node-0", host_ip="196.168.0.1", runtime=False), _pod("other", ready=False, host_ip="192.0.2.9"),
            _pod("colors-node-0")]
    result = F["dashboard_url"](_svc(), pods)
    assert result["url"] == "http://192.0.2.2:31234/"
    assert "colors-node-0" in result["how"]


def test_dashboard_url_without_a_reachable_pod_says_why_and_gives_the_cluster_name():
    pods = [_pod("kwok-node-0", host_ip="196.168.0.1", runtime=False), _pod("colors-node-0", deleting=True)]
    result = F["dashboard_url"](_svc(), pods)
    assert result["url"] == "" and "http://colors.colors.svc:80/" in result["how"]
    assert F["dashboard_url"](_svc("ClusterIP", None), pods)["url"] == ""


def test_dashboard_url_prefers_the_public_url_and_refuses_what_is_not_a_service():
    assert F["dashboard_url"](_svc(), [], "https://colors.example.com/")["url"] == "https://colors.example.com/"
    with pytest.raises(AnsibleFilterError, match="expected a Service"):
        F["dashboard_url"]({}, [])


NOW = "2026-12-04T12:00:00Z"
HOLIDAYS = {"start": "2026-12-24T00:00:00Z", "end": "2026-12-27T00:00:00Z", "reason": "holidays"}


def test_a_declared_freeze_stops_releases_until_it_is_lifted_or_its_until_passes():
    declared = {"reason": "INC-42: stop the line", "by": "oncall", "since": "2026-12-04T11:00:00Z", "until": ""}
    assert F["release_freeze"](declared, [], NOW) == {
        "source": "declared", "reason": "INC-42: stop the line", "by": "oncall", "since": "2026-12-04T11:00:00Z",
        "until": ""}
    assert F["release_freeze"]({**declared, "until": "2026-12-04T13:00:00Z"}, [], NOW)["until"]
    assert F["release_freeze"]({**declared, "until": "2026-12-04T11:30:00Z"}, [], NOW) is None  # over
    assert F["release_freeze"](None, [], NOW) is None


def test_an_inventory_change_window_freezes_only_while_it_is_open():
    assert F["release_freeze"](None, [HOLIDAYS], "2026-12-25T08:00:00Z")["reason"] == "holidays"
    assert F["release_freeze"](None, [HOLIDAYS], "2026-12-27T00:00:00Z") is None  # the end is open
    assert F["release_freeze"](None, [HOLIDAYS], NOW) is None


@pytest.mark.parametrize(("declared", "windows", "quoted"), [
    ({"reason": " "}, [], "has no reason"),
    ({"reason": "x", "until": "tomorrow"}, [], "'tomorrow' is not a date and time"),
    ({"reason": "x", "until": "2026-12-05T00:00:00"}, [], "has no time zone"),
    (None, [{"start": "2026-12-24T00:00:00Z", "reason": "x"}], "lacks end"),
    (None, [{**HOLIDAYS, "end": "2026-12-23T00:00:00Z"}], "ends before it starts"),
    (None, "holidays", "is not a list"),
])
def test_release_freeze_refuses_bad_input_quoting_it(declared, windows, quoted):
    with pytest.raises(AnsibleFilterError, match=quoted):
        F["release_freeze"](declared, windows, NOW)
